"""Abstract ports shared by Atelier's service cores.

Everything here is plain standard-library Python: `typing.Protocol`s, frozen dataclasses and
exceptions. Domain and application code of every service may import this package; this package
imports nothing outside the standard library (checked by import-linter).
"""

"""Infrastructure shared by the services' outer layers: database engines, the gRPC server
factory with internal auth and the one error table, call context, logging.

Only adapters, entrypoints and composition roots may import this package; domain and application
code may not (import-linter).
"""

"""Atelier gateway: the public HTTP API in front of billing and tasks.

Layout (hexagonal): ``domain`` and ``application`` are plain Python on ``atelier_ports``;
``adapters`` hold SQLAlchemy persistence, password hashing, JWTs and gRPC clients;
``entrypoints`` hold the aiohttp app and the CLI; ``bootstrap`` is the one composition root.
"""

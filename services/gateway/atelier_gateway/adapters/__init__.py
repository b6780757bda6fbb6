"""Gateway adapters: SQLAlchemy persistence, Argon2 passwords, JWT access tokens and gRPC
clients of billing and tasks. May import the core, ``atelier_common`` and infrastructure.
"""

"""Gateway adapters: SQLAlchemy persistence, Argon2 passwords, JWT access tokens, local files,
rate limits, phone numbers (``phonenumbers``), SMS (console, Tencent Cloud), and the gRPC clients
of billing and tasks (``grpc_billing``, ``grpc_tasks`` over ``grpc_channel``) — the only modules
of the gateway that import generated code (``atelier.*``).
May import the core, ``atelier_common`` and infrastructure.
"""

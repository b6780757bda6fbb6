"""Alembic migrations of the gateway database (run with ``atelier-gateway migrate``)."""

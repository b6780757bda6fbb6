"""Alembic environment: the connection is handed in by ``atelier_gateway.adapters.migrate``."""

from __future__ import annotations

from alembic import context

from atelier_gateway.adapters.orm import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    version_table="gateway_alembic_version",
)
with context.begin_transaction():
    context.run_migrations()

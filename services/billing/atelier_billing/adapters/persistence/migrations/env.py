"""Alembic environment for billing. Run through ``atelier-billing migrate`` (see migrate.py)."""

from __future__ import annotations

from alembic import context

from atelier_billing.adapters.persistence.tables import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    version_table="alembic_version_billing",
)
with context.begin_transaction():
    context.run_migrations()

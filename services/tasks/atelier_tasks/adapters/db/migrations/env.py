"""Alembic environment of the tasks service (run through ``atelier_tasks.adapters.db.migrate``)."""

from __future__ import annotations

from alembic import context

from atelier_tasks.adapters.db.tables import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=True,
    version_table=context.config.get_main_option("version_table") or "alembic_version",
)
with context.begin_transaction():
    context.run_migrations()

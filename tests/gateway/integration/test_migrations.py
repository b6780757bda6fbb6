"""The packaged Alembic migrations create exactly the schema the adapters use."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from atelier_common.db import make_engine

from atelier_gateway.adapters.migrate import migrate
from atelier_gateway.adapters.orm import metadata


def test_migrations_match_the_tables_and_are_repeatable(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        migrate(engine)
        migrate(engine)  # a second run is a no-op
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"version_table": "gateway_alembic_version"}
            )
            assert compare_metadata(context, metadata) == []
    finally:
        engine.dispose()

from __future__ import annotations

from collections.abc import Iterator

import pytest
from atelier_common.db import make_engine

from atelier_billing.adapters.persistence.migrate import upgrade
from atelier_billing.adapters.persistence.repository import SqlUnitOfWorkFactory
from atelier_billing.application.ports import BillingUnitOfWorkFactory


@pytest.fixture
def store(database_url: str) -> Iterator[BillingUnitOfWorkFactory]:
    """The use cases' unit of work: the real repository on a migrated SQLite or PostgreSQL
    database (``database_url`` is parametrized over both)."""
    engine = make_engine(database_url)
    upgrade(engine)
    try:
        yield SqlUnitOfWorkFactory(engine)
    finally:
        engine.dispose()

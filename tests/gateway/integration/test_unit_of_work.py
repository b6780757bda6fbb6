"""The gateway's unit of work, real (SQLite and PostgreSQL) and fake alike: a transaction begins
on enter and ends on ``commit()``, ``rollback()`` or exit (rolled back unless committed);
``commit()`` does not start another one."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from atelier_common.db import make_engine
from sqlalchemy.exc import ResourceClosedError

from atelier_gateway.adapters.migrate import migrate
from atelier_gateway.adapters.sqlalchemy_uow import SqlGatewayUnitOfWorkFactory
from atelier_gateway.application.ports import GatewayUnitOfWorkFactory
from atelier_gateway.domain.model import Role, User
from tests.gateway.fakes import FakeGatewayUnitOfWork

NOW = datetime(2030, 1, 1, tzinfo=UTC)


def _user(n: int) -> User:
    return User(f"usr_{n}", f"u{n}@example.com", "hash", Role.USER, NOW, name=f"U{n}")


@pytest.fixture(params=["sql", "fake"])
def units(request: pytest.FixtureRequest, database_url: str) -> Iterator[GatewayUnitOfWorkFactory]:
    if request.param == "fake":  # the same expectations hold for the fake
        yield FakeGatewayUnitOfWork()
        return
    engine = make_engine(database_url)
    migrate(engine)
    try:
        yield SqlGatewayUnitOfWorkFactory(engine)
    finally:
        engine.dispose()


def test_commit_keeps_the_changes(units: GatewayUnitOfWorkFactory) -> None:
    with units() as uow:
        uow.users.add(_user(1))
        uow.commit()
    with units() as uow:
        assert uow.users.get("usr_1") is not None


def test_leaving_without_commit_rolls_back(units: GatewayUnitOfWorkFactory) -> None:
    with units() as uow:
        uow.users.add(_user(1))
    with pytest.raises(RuntimeError), units() as uow:
        uow.users.add(_user(2))
        raise RuntimeError("the use case failed half-way")
    with units() as uow:
        assert uow.users.get("usr_1") is None and uow.users.get("usr_2") is None


def test_rollback_ends_the_transaction(units: GatewayUnitOfWorkFactory) -> None:
    with units() as uow:
        uow.users.add(_user(1))
        uow.rollback()
    with units() as uow:
        assert uow.users.get("usr_1") is None


def test_commit_does_not_begin_another_transaction(database_url: str) -> None:
    """After ``commit()`` the unit is over: a write through it fails loudly instead of going into
    a new transaction that nobody commits (the old unit of work began one on every commit)."""
    engine = make_engine(database_url)
    migrate(engine)
    units = SqlGatewayUnitOfWorkFactory(engine)
    try:
        with units() as uow:
            uow.users.add(_user(1))
            uow.commit()
            with pytest.raises(ResourceClosedError):
                uow.users.add(_user(2))
        with units() as uow:
            assert uow.users.get("usr_1") is not None
            assert uow.users.get("usr_2") is None
    finally:
        engine.dispose()

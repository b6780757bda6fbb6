"""Idempotency-Key records on the real database (SQLite and PostgreSQL): each step is one
statement in a ``one_statement`` unit (autocommit on PostgreSQL), and the semantics the HTTP
contract promises hold — one claim wins, a retry with the same body replays the first answer, a
different body is refused, an unfinished claim blocks until it is stale or released."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from threading import Barrier

import pytest
from atelier_common.db import make_engine
from sqlalchemy import Connection, Engine, event

from atelier_gateway.adapters.migrate import migrate
from atelier_gateway.adapters.sqlalchemy_uow import SqlGatewayUnitOfWorkFactory
from atelier_gateway.application.idempotency import IdempotencyKeys
from atelier_gateway.domain.errors import IdempotencyKeyInFlight, IdempotencyKeyReused
from tests.support.fakes import FakeClock

SCOPE = "POST /v1/tasks"


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url, pool_size=8)
    migrate(engine)
    try:
        yield engine
    finally:
        engine.dispose()


def test_claim_replay_conflict_release_and_stale_takeover(engine: Engine) -> None:
    clock = FakeClock()
    keys = IdempotencyKeys(SqlGatewayUnitOfWorkFactory(engine), clock)
    assert keys.begin("u1", "k", SCOPE, b'{"a":1}') is None
    with pytest.raises(IdempotencyKeyInFlight):
        keys.begin("u1", "k", SCOPE, b'{"a":1}')
    with pytest.raises(IdempotencyKeyReused):
        keys.begin("u1", "k", SCOPE, b'{"a":2}')
    assert keys.begin("u2", "k", SCOPE, b'{"a":1}') is None  # keys are per user
    keys.complete("u1", "k", 201, b'{"id":"t1"}')
    replay = keys.begin("u1", "k", SCOPE, b'{"a":1}')
    assert replay is not None and (replay.status, replay.body) == (201, b'{"id":"t1"}')
    with pytest.raises(IdempotencyKeyReused):
        keys.begin("u1", "k", SCOPE, b'{"a":2}')
    keys.abandon("u1", "k")  # a completed record is never released
    assert keys.begin("u1", "k", SCOPE, b'{"a":1}') is not None

    keys.abandon("u2", "k")  # a failed first attempt frees the key
    assert keys.begin("u2", "k", SCOPE, b'{"other":1}') is None
    clock.advance(minutes=3)  # a claim nobody finished is taken over once stale
    assert keys.begin("u2", "k", SCOPE, b'{"other":1}') is None
    with pytest.raises(IdempotencyKeyInFlight):
        keys.begin("u2", "k", SCOPE, b'{"other":1}')


def test_concurrent_claims_of_one_key_let_exactly_one_through(engine: Engine) -> None:
    keys = IdempotencyKeys(SqlGatewayUnitOfWorkFactory(engine), FakeClock(), timedelta(hours=1))
    n = 8
    start = Barrier(n)

    def claim(_: int) -> str:
        start.wait()
        try:
            return "won" if keys.begin("u1", "same", SCOPE, b"{}") is None else "replayed"
        except IdempotencyKeyInFlight:
            return "in flight"

    with ThreadPoolExecutor(n) as pool:
        outcomes = list(pool.map(claim, range(n)))
    assert outcomes.count("won") == 1, outcomes
    assert outcomes.count("in flight") == n - 1, outcomes


def test_each_step_is_one_statement_without_a_transaction_on_postgresql(engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite runs every unit in a BEGIN IMMEDIATE transaction")
    statements: list[tuple[str, bool]] = []

    def seen(conn: Connection, _cur: object, statement: str, *_: object) -> None:
        autocommit = bool(getattr(conn.connection.dbapi_connection, "autocommit", False))
        statements.append((statement.split()[0].upper(), autocommit))

    keys = IdempotencyKeys(SqlGatewayUnitOfWorkFactory(engine), FakeClock())
    event.listen(engine, "before_cursor_execute", seen)
    try:
        assert keys.begin("u1", "k", SCOPE, b"{}") is None
        keys.complete("u1", "k", 201, b"{}")
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    # No BEGIN, SAVEPOINT or COMMIT round trips: the claim and the answer, each committed alone.
    assert statements == [("INSERT", True), ("UPDATE", True)]

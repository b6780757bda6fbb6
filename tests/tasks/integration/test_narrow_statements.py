"""Issue 15: the create and read paths' statements on SQLite and PostgreSQL — the daily limit as
a counter that abandoned and refused creates give back, UPDATEs of only what changed, a read of
a task and its images in one query on a unit that neither begins nor rolls back (PostgreSQL),
and a pooled connection the server closed replaced without a ping."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from atelier_common.db import make_engine
from sqlalchemy import Engine, event

from atelier_tasks.adapters.db.migrate import upgrade
from atelier_tasks.adapters.db.tables import task_daily_counts
from atelier_tasks.adapters.db.tables import tasks as tasks_table
from atelier_tasks.application.create_task import CreateTaskCommand
from atelier_tasks.application.queries import GetTaskQuery, ListTasksQuery
from atelier_tasks.application.saga import CreateAbandoned
from atelier_tasks.domain.errors import DailyLimitReached, InsufficientCredits
from atelier_tasks.domain.model import HoldState, TaskStatus, TaskType
from tests.tasks.fakes import FakeBillingClient, clock_at_start
from tests.tasks.harness import MakeTasks


@pytest.fixture
def billing() -> FakeBillingClient:
    fake = FakeBillingClient()
    fake.fund("u1", 20)
    return fake


def create(tasks: Any, request_id: str | None = None, user: str = "u1") -> str:
    view = tasks.use_cases.create_task(
        CreateTaskCommand(user, TaskType.TEXT_TO_IMAGE, {"prompt": "p"}, request_id=request_id)
    )
    return str(view.task.id)


def counted(engine: Engine, user: str = "u1") -> int:
    with engine.connect() as conn:
        n = conn.execute(
            sa.select(sa.func.coalesce(sa.func.sum(task_daily_counts.c.n), 0)).where(
                task_daily_counts.c.user_id == user
            )
        ).scalar_one()
    return int(n)


@contextmanager
def recorded(engine: Engine) -> Iterator[list[str]]:
    """Every statement and every BEGIN/COMMIT/ROLLBACK the engine's connections send."""
    seen: list[str] = []

    def statement(_c: Any, _cur: Any, sql: str, *_: Any) -> None:
        seen.append(" ".join(sql.split()))

    hooks: dict[str, Callable[..., Any]] = {
        "before_cursor_execute": statement,
        "begin": lambda _c: seen.append("BEGIN"),
        "commit": lambda _c: seen.append("COMMIT"),
        "rollback": lambda _c: seen.append("ROLLBACK"),
    }
    for name, hook in hooks.items():
        event.listen(engine, name, hook)
    try:
        yield seen
    finally:
        for name, hook in hooks.items():
            event.remove(engine, name, hook)


@contextmanager
def on_the_wire(engine: Engine, path: Path) -> Iterator[list[str]]:
    """The messages PostgreSQL's client library sends on connections checked out meanwhile
    (libpq's protocol trace): one per line, e.g. ``Query "BEGIN"``, ``Parse``, ``Sync``."""
    messages: list[str] = []
    traced: list[Any] = []
    with path.open("w") as out:

        def checkout(dbapi_conn: Any, *_: Any) -> None:
            dbapi_conn.pgconn.trace(out.fileno())
            traced.append(dbapi_conn.pgconn)

        event.listen(engine, "checkout", checkout)
        try:
            yield messages
        finally:
            event.remove(engine, "checkout", checkout)
            for pgconn in traced:
                pgconn.untrace()
    for line in path.read_text().splitlines():
        parts = line.split("\t")
        if len(parts) >= 4 and parts[1] == "F":
            messages.append(" ".join(p.strip() for p in parts[3:5]))


def test_abandoned_and_refused_creates_give_their_count_back(
    make_tasks: MakeTasks, billing: FakeBillingClient
) -> None:
    tasks = make_tasks({"TASKS_DAILY_LIMIT": 2}, billing=billing, clock=clock_at_start())
    billing.down = True
    with pytest.raises(CreateAbandoned):
        create(tasks, "r1")
    assert counted(tasks.engine) == 0  # abandoned: the caller was told nothing was done
    billing.down = False
    with pytest.raises(InsufficientCredits):
        create(tasks, user="broke")
    assert counted(tasks.engine, "broke") == 0  # refused: the task was deleted
    create(tasks, "r1")  # the retry of the abandoned request
    create(tasks, "r2")
    assert counted(tasks.engine) == 2
    with pytest.raises(DailyLimitReached):
        create(tasks, "r3")
    assert counted(tasks.engine) == 2
    create(tasks, "r2")  # a replay is answered, not counted, even at the limit
    page, _ = tasks.use_cases.list_tasks(ListTasksQuery("u1", 10, ""))
    assert sorted(v.task.status for v in page) == [
        TaskStatus.FAILED,
        TaskStatus.PENDING,
        TaskStatus.PENDING,
    ]


def test_the_sweep_abandoning_an_interrupted_create_gives_its_count_back(
    make_tasks: MakeTasks, billing: FakeBillingClient
) -> None:
    clock = clock_at_start()
    tasks = make_tasks({"TASKS_DAILY_LIMIT": 1}, billing=billing, clock=clock)
    billing.lose_answers = True  # the hold lands, the answer never comes: abandoned
    with pytest.raises(CreateAbandoned):
        create(tasks, "r1")
    billing.lose_answers = False
    assert counted(tasks.engine) == 0
    create(tasks, "r2")
    with pytest.raises(DailyLimitReached):
        create(tasks, "r3")


def test_the_create_is_one_transaction_and_one_narrow_update(
    make_tasks: MakeTasks, billing: FakeBillingClient, tmp_path: Path
) -> None:
    tasks = make_tasks(billing=billing)
    with recorded(tasks.engine) as seen:
        create(tasks, "r1")
    statements = [s for s in seen if s.startswith(("INSERT", "UPDATE", "SELECT", "DELETE", "WITH"))]
    pg = tasks.engine.dialect.name == "postgresql"
    if pg:  # the task, its count and its first event in one statement
        first = statements[0]
        assert first.startswith("WITH new_task AS (INSERT INTO tasks "), first
        for part in ("taken AS (INSERT INTO task_daily_counts ", "AS (INSERT INTO task_events "):
            assert part in first, first
    shapes = ["INSERT INTO tasks", "INSERT INTO task_daily_counts", "INSERT INTO task_events"]
    assert [s.split(" (", 1)[0].split(" SET ", 1)[0] for s in statements] == [
        *(["WITH new_task AS"] if pg else shapes),
        "INSERT INTO moderation_decisions",  # the allowed prompt, in the same transaction
        "UPDATE tasks",  # the hold confirmation
    ]
    set_clause = statements[-1].split(" SET ", 1)[1].split(" WHERE ", 1)[0]
    columns = sorted(part.split("=", 1)[0].strip() for part in set_clause.split(","))
    assert columns == ["hold_state", "updated_at", "version"]  # of the 26 columns
    if tasks.engine.dialect.name != "postgresql":
        assert seen.count("COMMIT") == 2 and "ROLLBACK" not in seen
        return
    with on_the_wire(tasks.engine, tmp_path / "libpq.trace") as wire:
        create(tasks, "r2")
    simple = [m for m in wire if m.startswith("Query")]
    # The insert's transaction; the confirmation is one statement, atomic in autocommit.
    assert [m.split()[1].strip('"') for m in simple] == ["BEGIN", "COMMIT"], wire
    assert sum(m.startswith("Execute") for m in wire) == 3  # + the prompt's decision


def test_a_task_and_its_images_are_read_in_one_query_without_rollback(
    make_tasks: MakeTasks, billing: FakeBillingClient, tmp_path: Path
) -> None:
    tasks = make_tasks(billing=billing)
    task_id = create(tasks)
    tasks.new_worker("w1").run_once()
    with recorded(tasks.engine) as seen:
        view = tasks.use_cases.get_task(GetTaskQuery("u1", task_id))
    assert view.task.status is TaskStatus.SUCCEEDED and view.task.hold_state is HoldState.CAPTURED
    assert len(view.images) >= 1
    statements = [s for s in seen if s not in ("BEGIN", "COMMIT", "ROLLBACK")]
    assert len(statements) == 1 and "JOIN task_images" in statements[0]
    if tasks.engine.dialect.name != "postgresql":
        assert "ROLLBACK" not in seen  # a deferred snapshot, committed
        return
    with on_the_wire(tasks.engine, tmp_path / "libpq.trace") as wire:
        for _ in range(8):  # psycopg prepares a statement from its fifth use on a connection
            tasks.use_cases.get_task(GetTaskQuery("u1", task_id))
    queries = [m for m in wire if m.startswith("Query")]
    assert queries == [], wire  # no ping, BEGIN, COMMIT or ROLLBACK: autocommit
    assert sum(m.startswith("Execute") for m in wire) == 8
    assert sum(m == "Sync" for m in wire) == 8 + 1  # one round trip per read (+1: PREPARE)
    binds = [m for m in wire if m.startswith("Bind")]
    assert all('"_pg3_' in b for b in binds[-3:]), wire  # prepared once, and it stays


def test_a_connection_the_server_closed_is_replaced_at_checkout(
    make_tasks: MakeTasks,
) -> None:
    tasks = make_tasks()
    if tasks.engine.dialect.name != "postgresql":
        pytest.skip("the pool and its checkout check are PostgreSQL's")
    engine = make_engine(tasks.engine.url.render_as_string(hide_password=False), pool_size=1)
    try:
        with engine.connect() as conn:
            pid = conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
        with tasks.engine.connect() as admin:
            assert admin.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": pid}).scalar()
            # The server has ended it once it is gone from pg_stat_activity.
            for _ in range(10_000):
                gone = admin.execute(
                    sa.text("SELECT count(*) FROM pg_stat_activity WHERE pid = :p"), {"p": pid}
                ).scalar_one()
                admin.commit()  # the next look takes a fresh statistics snapshot
                if not gone:
                    break
            assert not gone
        with engine.connect() as conn:  # without a ping, yet no "connection closed" error
            assert conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one() != pid
    finally:
        engine.dispose()


def test_the_list_pages_by_row_comparison_across_equal_timestamps(
    make_tasks: MakeTasks, billing: FakeBillingClient
) -> None:
    clock = clock_at_start()  # a fixed clock: every task has the same created_at
    tasks = make_tasks(billing=billing, clock=clock)
    created = {create(tasks, f"r{n}") for n in range(7)}
    clock.advance(seconds=1)
    seen: list[str] = []
    token = ""
    while True:
        page, token = tasks.use_cases.list_tasks(ListTasksQuery("u1", 3, token))
        seen += [v.task.id for v in page]
        if not token:
            break
    assert len(seen) == 7 and set(seen) == created
    assert seen == sorted(seen, reverse=True)


def test_migration_0002_counts_the_tasks_already_created_today(database_url: str) -> None:
    now = datetime.now(UTC)

    def row(n: int, created: datetime, status: str = "pending", reason: str | None = None) -> Any:
        return {
            **{c.name: None for c in tasks_table.c},
            **dict(id=f"t{n}", user_id="u1", type="text_to_image", status=status),
            **dict(hold_state="held", params={}, input_keys=[], cost=1, provider="local"),
            **dict(attempts=0, polls=0, last_sequence=1, version=1, error_reason=reason),
            **dict(created_at=created, updated_at=created, deadline_at=created),
        }

    engine = make_engine(database_url)
    try:
        upgrade(engine, "0001")
        with engine.begin() as conn:
            conn.execute(
                tasks_table.insert(),
                [
                    row(1, now),
                    row(2, now, "failed", "PROVIDER_FAILED"),  # counts
                    row(3, now, "failed", "BILLING_UNAVAILABLE"),  # abandoned: does not
                    row(4, now - timedelta(days=5)),  # long ago: not asked any more
                ],
            )
        upgrade(engine)
        with engine.connect() as conn:
            rows = conn.execute(sa.select(task_daily_counts)).all()
        assert [tuple(r) for r in rows] == [("u1", now.date(), 2)]
    finally:
        engine.dispose()

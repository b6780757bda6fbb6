"""The tasks service's database cost per create and per read, on PostgreSQL (a script, not a test).

Runs the real use cases (``CreateTask``, ``GetTask``) on the real SQL adapters against a fresh
database, with a no-op billing (the tasks side is measured, not billing), and reports for each:
CPU per call of this process (``time.process_time``), wall time per call, and the client/server
round trips per call as libpq sees them (its protocol trace: every ``Query`` message and every
extended-protocol ``Sync`` is one round trip; ``BEGIN``/``COMMIT``/``ROLLBACK``/pings included),
plus PostgreSQL's own transaction counters (``pg_stat_database``).

    .venv/bin/python -m tests.tasks.bench_db \
        --database-url postgresql://postgres@127.0.0.1:5432/postgres --calls 2000
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import event

from tests.tasks.bench_worker import NoBilling

PROFILE = False  # --profile: where the CPU goes (cProfile, by own time)


def _settings(url: str, data_dir: str) -> Any:
    from atelier_tasks.settings import TasksSettings

    return TasksSettings(
        TASKS_DATABASE_URL=url,
        ATELIER_DATA_DIR=data_dir,
        LOCAL_GENERATOR_DELAY_MS=0,
        TASKS_DAILY_LIMIT=1_000_000,
    )


class Trace:
    """libpq's protocol trace of every pooled connection, counted per phase."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.file = path.open("w")
        self.on = False

    def attach(self, dbapi_conn: Any) -> None:
        dbapi_conn.pgconn.trace(self.file.fileno())

    def counts(self) -> Counter[str]:
        self.file.flush()
        seen: Counter[str] = Counter()
        for line in self.path.read_text().splitlines():
            parts = line.split("\t")
            if len(parts) < 4 or parts[1] != "F":
                continue
            kind = parts[3].strip()
            if kind == "Query":
                text = parts[4].strip().strip('"') if len(parts) > 4 else ""
                seen["round trips"] += 1
                seen[f"simple {text.split(' ', 1)[0].upper() or '(empty)'}"] += 1
            elif kind == "Sync":
                seen["round trips"] += 1
            elif kind in ("Parse", "Bind", "Execute"):
                seen[kind] += 1
        return seen

    def reset(self) -> None:
        self.file.flush()
        self.file.truncate(0)
        self.file.seek(0)


def _xacts(admin_url: str, name: str) -> tuple[int, int]:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        row = conn.execute(
            "SELECT xact_commit, xact_rollback FROM pg_stat_database WHERE datname = %s", (name,)
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def measure(
    label: str,
    calls: int,
    call: Callable[[int], object],
    trace: Trace,
    admin_url: str,
    name: str,
) -> None:
    for i in range(min(200, calls)):  # warm-up: statement caches, prepared statements, pool
        call(i)
    time.sleep(0.6)  # pg_stat_database is flushed at most every 0.5 s
    before = _xacts(admin_url, name)
    trace.reset()
    profile = cProfile.Profile() if PROFILE else None
    cpu, wall = time.process_time(), time.perf_counter()
    if profile is not None:
        profile.enable()
    for i in range(calls):
        call(i)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    if profile is not None:
        profile.disable()
        pstats.Stats(profile).sort_stats("tottime").print_stats(25)
    counts = trace.counts()
    time.sleep(0.6)
    after = _xacts(admin_url, name)
    per = {k: v / calls for k, v in sorted(counts.items())}
    print(
        f"{label}: {cpu / calls * 1000:.2f} ms CPU/call, {wall / calls * 1000:.2f} ms wall/call, "
        f"{per.pop('round trips', 0):.2f} round trips/call; "
        f"server commits ≈{(after[0] - before[0]) / calls:.2f}/call, "
        f"rollbacks ≈{(after[1] - before[1]) / calls:.2f}/call (pg_stat_database: approximate)"
    )
    print("   per call: " + ", ".join(f"{k} {v:.2f}" for k, v in per.items()))


def run(admin_url: str, calls: int) -> None:
    from atelier_tasks.adapters.db.migrate import upgrade
    from atelier_tasks.application.create_task import CreateTaskCommand
    from atelier_tasks.application.queries import GetTaskQuery
    from atelier_tasks.bootstrap import build_container
    from atelier_tasks.domain.model import TaskType

    name = f"atelier_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = admin_url.rsplit("/", 1)[0] + f"/{name}"
    data_dir = tempfile.mkdtemp(prefix="atelier-bench-")
    trace = Trace(Path(data_dir) / "libpq.trace")
    try:
        app = build_container(_settings(url, data_dir), billing=NoBilling())
        upgrade(app.engine)
        app.engine.dispose()
        event.listen(app.engine, "connect", lambda c, _r: trace.attach(c))
        created: list[str] = []

        def create(i: int) -> None:
            view = app.use_cases.create_task(
                CreateTaskCommand(
                    f"user{i % 50}",
                    TaskType.TEXT_TO_IMAGE,
                    {"prompt": f"bench {i}"},
                    request_id=f"req-{i}-{len(created)}",
                )
            )
            created.append(view.task.id)

        measure("create", calls, create, trace, admin_url, name)
        worker = app.new_worker("bench")  # finish some tasks so reads return images
        for _ in range(20):
            worker.run_once()
        finished = created[:200]
        tasks = [
            app.use_cases.get_task(GetTaskQuery(f"user{i % 50}", t)) for i, t in enumerate(finished)
        ]
        with_images = sum(1 for v in tasks if v.images)
        print(f"reads: {len(finished)} tasks, {with_images} of them with images")

        def get(i: int) -> None:
            n = i % len(finished)
            app.use_cases.get_task(GetTaskQuery(f"user{n % 50}", finished[n]))

        measure("get", calls, get, trace, admin_url, name)
        app.close()
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--database-url",
        default=os.environ.get(
            "ATELIER_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
    )
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    global PROFILE
    PROFILE = args.profile
    run(args.database_url, args.calls)


if __name__ == "__main__":
    main()

"""The task list at 100k tasks for one user, on PostgreSQL (a script, not a test).

Fills a fresh database with ``--tasks`` tasks of one user (plus as many of other users), spread
over statuses and types like a real history (mostly succeeded text_to_image), then, through the
real ``ListTasks`` use case: the p50/p95 of the first page, of a page deep in the history (reached
with the opaque page tokens), and of each filter (status, type, both; a rare and an absent
status). For each it prints PostgreSQL's plan of the statement the repository sent
(``EXPLAIN (ANALYZE, BUFFERS)``).

    .venv/bin/python -m tests.tasks.explain_task_list \
        --database-url postgresql://postgres@127.0.0.1:5432/postgres --tasks 100000
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import uuid
from typing import Any

import psycopg
from sqlalchemy import event

from tests.tasks.bench_worker import NoBilling

FILL = """
INSERT INTO tasks (id, user_id, type, status, hold_state, params, input_keys, cost, provider,
                   request_id, attempts, error_reason, error_message, provider_job_id,
                   created_at, updated_at, started_at, finished_at, deadline_at,
                   next_attempt_at, next_poll_at, polls, lease_owner, lease_expires_at,
                   last_sequence, version)
SELECT 'task_' || md5(%(user)s || g::text), %(user)s,
       CASE WHEN g %% 10 = 0 THEN 'basic_clean' WHEN g %% 50 = 1 THEN 'model_pose12'
            ELSE 'text_to_image' END,
       CASE WHEN g %% 100 = 3 THEN 'cancelled' WHEN g %% 20 = 7 THEN 'failed'
            ELSE 'succeeded' END,
       'captured', '{"prompt": "a fox", "width": 512, "height": 512}', '[]', 1, 'local',
       NULL, 1, NULL, NULL, NULL,
       ts, ts, ts, ts, ts + interval '10 minutes', NULL, NULL, 0, NULL, NULL, 3, 4
FROM generate_series(1, %(n)s) AS g,
     LATERAL (SELECT timestamptz '2026-01-01' + g * interval '97 seconds') AS t(ts)
"""


def _settings(url: str, data_dir: str) -> Any:
    from atelier_tasks.settings import TasksSettings

    return TasksSettings(TASKS_DATABASE_URL=url, ATELIER_DATA_DIR=data_dir)


def run(admin_url: str, n: int, calls: int) -> None:
    from atelier_tasks.adapters.db.migrate import upgrade
    from atelier_tasks.application.queries import ListTasksQuery
    from atelier_tasks.bootstrap import build_container
    from atelier_tasks.domain.model import TaskStatus, TaskType

    name = f"atelier_list_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = admin_url.rsplit("/", 1)[0] + f"/{name}"
    try:
        app = build_container(_settings(url, tempfile.mkdtemp()), billing=NoBilling())
        upgrade(app.engine)
        with psycopg.connect(url, autocommit=True) as conn:
            started = time.perf_counter()
            for user in ("heavy", "other1", "other2"):
                conn.execute(FILL, {"user": user, "n": n if user == "heavy" else n // 2})
            conn.execute("VACUUM ANALYZE tasks")
            print(
                f"filled {n} tasks for one user (+{n} others) "
                f"in {time.perf_counter() - started:.1f} s"
            )
        sent: list[tuple[str, Any]] = []

        @event.listens_for(app.engine, "before_cursor_execute")
        def _capture(_c: Any, _cur: Any, statement: str, params: Any, *_: Any) -> None:
            if statement.lstrip().upper().startswith("SELECT") and "FROM tasks" in statement:
                sent.append((statement, params))

        list_tasks = app.use_cases.list_tasks
        # a page deep in the history: follow the tokens 50 pages of 50
        token = ""
        for _ in range(50):
            _, token = list_tasks(ListTasksQuery("heavy", 50, token))
        cases: list[tuple[str, ListTasksQuery]] = [
            ("first page (20)", ListTasksQuery("heavy", 20, "")),
            ("page 51 (50, by token)", ListTasksQuery("heavy", 50, token)),
            ("status=failed", ListTasksQuery("heavy", 20, "", status=TaskStatus.FAILED)),
            ("status=cancelled (1%)", ListTasksQuery("heavy", 20, "", status=TaskStatus.CANCELLED)),
            ("status=pending (none)", ListTasksQuery("heavy", 20, "", status=TaskStatus.PENDING)),
            (
                "type=model_pose12 (2%)",
                ListTasksQuery("heavy", 20, "", task_type=TaskType.MODEL_POSE12),
            ),
            (
                "type=basic_clean + status=failed",
                ListTasksQuery(
                    "heavy", 20, "", task_type=TaskType.BASIC_CLEAN, status=TaskStatus.FAILED
                ),
            ),
        ]
        for label, query in cases:
            for _ in range(5):
                list_tasks(query)
            times = []
            for _ in range(calls):
                started = time.perf_counter()
                views, _ = list_tasks(query)
                times.append((time.perf_counter() - started) * 1000)
            p95 = statistics.quantiles(times, n=20)[-1]
            print(
                f"\n== {label}: {len(views)} rows, p50 {statistics.median(times):.2f} ms, "
                f"p95 {p95:.2f} ms (ListTasks use case, {calls} calls)"
            )
            sent.clear()
            list_tasks(query)
            statement, params = sent[0]
            with app.engine.connect() as conn:
                raw = conn.connection.driver_connection
                assert raw is not None
                with raw.cursor() as cur:
                    cur.execute("EXPLAIN (ANALYZE, BUFFERS) " + statement, params)
                    for (line,) in cur.fetchall():
                        print("   " + line)
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
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--calls", type=int, default=100)
    args = parser.parse_args()
    run(args.database_url, args.tasks, args.calls)


if __name__ == "__main__":
    main()

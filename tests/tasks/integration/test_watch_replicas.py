"""A watcher on one replica follows a task changed by another (PostgreSQL LISTEN/NOTIFY)."""

from __future__ import annotations

import dataclasses
import threading
import time

import pytest

from atelier_tasks.application.create_task import CreateTaskCommand
from atelier_tasks.application.watch_task import WatchTaskQuery
from atelier_tasks.bootstrap import tasks_config
from atelier_tasks.domain.model import TaskStatus, TaskType
from tests.tasks.fakes import FakeBillingClient
from tests.tasks.harness import MakeTasks


def test_watch_on_one_replica_sees_changes_made_by_another(
    database_url: str, make_tasks: MakeTasks
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("cross-replica fan-out is PostgreSQL LISTEN/NOTIFY")
    billing = FakeBillingClient()
    billing.fund("u1", 5)
    replica_a = make_tasks(billing=billing)
    # Watchers fall back to re-reading every 60 s; only a NOTIFY can wake them sooner.
    slow = dataclasses.replace(tasks_config(replica_a.settings), watch_poll_seconds=60.0)
    replica_a.use_cases.watch.config = slow
    replica_b = make_tasks(billing=billing)
    task_id = replica_b.use_cases.create_task(
        CreateTaskCommand(
            "u1", TaskType.TEXT_TO_IMAGE, {"prompt": "x", "width": 256, "height": 256}
        )
    ).task.id
    seen: list[tuple[int, TaskStatus]] = []
    first = threading.Event()

    def watch() -> None:
        for event in replica_a.use_cases.watch(
            WatchTaskQuery("u1", task_id, 0), stop=lambda: False
        ):
            seen.append((event.sequence, event.status))
            first.set()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    assert first.wait(10)
    started = time.monotonic()
    replica_b.new_worker("b").run_once()
    watcher.join(15)
    assert not watcher.is_alive(), "the watcher was not woken by NOTIFY"
    assert time.monotonic() - started < 15
    assert seen == [
        (1, TaskStatus.PENDING),
        (2, TaskStatus.PROCESSING),
        (3, TaskStatus.SUCCEEDED),
    ]

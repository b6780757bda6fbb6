"""Fixtures of the tasks tests: the real wiring on a test database, with parts swapped."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from atelier_ports.clock import Clock
from atelier_ports.ids import IdGenerator
from atelier_tasks.adapters.db.migrate import upgrade
from atelier_tasks.application.config import TasksConfig
from atelier_tasks.application.ports import BillingClient
from atelier_tasks.application.ports.generation import GenerationProvider
from atelier_tasks.application.ports.moderation import Moderation
from atelier_tasks.application.ports.storage import ObjectStorage
from atelier_tasks.bootstrap import TasksContainer, build_container
from atelier_tasks.settings import TasksSettings
from tests.support.billing_server import INTERNAL_TOKEN
from tests.tasks.grpc_stack import grpc_stack  # noqa: F401  (a fixture shared by test modules)
from tests.tasks.harness import MakeTasks


def tasks_settings(database_url: str, data_dir: Path, **env: Any) -> TasksSettings:
    values: dict[str, Any] = {
        "TASKS_DATABASE_URL": database_url,
        "ATELIER_DATA_DIR": str(data_dir),
        "ATELIER_INTERNAL_TOKEN": INTERNAL_TOKEN,
        "TASKS_HOLD_GRACE_SECONDS": 0,
        "TASKS_RETRY_BACKOFF_SECONDS": 0,
    }
    values.update(env)
    return TasksSettings(**values)


@pytest.fixture
def make_tasks(database_url: str, tmp_path: Path) -> Iterator[MakeTasks]:
    """Build (and migrate) a TasksContainer on the test database; closed at teardown."""
    apps: list[TasksContainer] = []

    def make(
        env: dict[str, Any] | None = None,
        *,
        clock: Clock | None = None,
        ids: IdGenerator | None = None,
        billing: BillingClient | None = None,
        providers: Mapping[str, GenerationProvider] | None = None,
        storage: ObjectStorage | None = None,
        config: TasksConfig | None = None,
        moderation: Moderation | None = None,
    ) -> TasksContainer:
        app = build_container(
            tasks_settings(database_url, tmp_path / "data", **(env or {})),
            clock=clock,
            ids=ids,
            billing=billing,
            providers=providers,
            storage=storage,
            config=config,
            moderation=moderation,
        )
        upgrade(app.engine)
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.close()


def wait_until(predicate: Callable[[], bool], timeout: float = 20.0, what: str = "") -> None:
    """Poll until ``predicate()`` holds or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        time.sleep(0.02)

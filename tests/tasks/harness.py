"""Wiring the real application and worker with Fake* ports."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from atelier_tasks.adapters.events import InProcessEventHub
from atelier_tasks.application.config import TasksConfig
from atelier_tasks.application.ports import TaskRepository
from atelier_tasks.application.service import CreateTask, TaskApplication
from atelier_tasks.application.worker import TaskWorker
from atelier_tasks.domain.model import TaskType
from tests.tasks.fakes import (
    FakeBillingClient,
    FakeClock,
    FakeImageTools,
    FakeProvider,
    FakeStorage,
    FakeTaskRepository,
    SequentialIds,
)


@dataclass
class Harness:
    repository: Any = field(default_factory=FakeTaskRepository)
    billing: FakeBillingClient = field(default_factory=FakeBillingClient)
    provider: FakeProvider = field(default_factory=FakeProvider)
    storage: Any = field(default_factory=FakeStorage)
    clock: FakeClock = field(default_factory=FakeClock)
    ids: SequentialIds = field(default_factory=SequentialIds)
    hub: InProcessEventHub = field(default_factory=InProcessEventHub)
    config: TasksConfig = field(
        default_factory=lambda: TasksConfig(retry_backoff=timedelta(seconds=2), daily_limit=50)
    )
    images: Any = field(default_factory=FakeImageTools)

    def __post_init__(self) -> None:
        self.app = TaskApplication(
            repository=self.repository,
            billing=self.billing,
            providers={self.provider.name: self.provider},
            storage=self.storage,
            hub=self.hub,
            clock=self.clock,
            ids=self.ids,
            config=self.config,
            images=self.images,
        )
        self.worker = TaskWorker(self.app, "worker-1")

    def create(self, user: str = "u1", prompt: str = "a cat", **params: Any) -> str:
        view = self.app.create_task(
            CreateTask(
                user_id=user, type=TaskType.TEXT_TO_IMAGE, params={"prompt": prompt, **params}
            )
        )
        return view.task.id


def with_repository(repository: TaskRepository, **kw: Any) -> Harness:
    return Harness(repository=repository, **kw)

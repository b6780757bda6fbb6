"""Wiring the real use cases, saga and worker with Fake* ports."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Protocol

from atelier_ports.clock import Clock
from atelier_ports.ids import IdGenerator
from atelier_tasks.adapters.events import InProcessEventHub
from atelier_tasks.application.config import TasksConfig
from atelier_tasks.application.create_task import CreateTaskCommand
from atelier_tasks.application.ports import BillingClient, TasksUnitOfWork
from atelier_tasks.application.ports.generation import GenerationProvider
from atelier_tasks.application.ports.moderation import Moderation
from atelier_tasks.application.ports.storage import ObjectStorage
from atelier_tasks.application.saga import TaskSaga
from atelier_tasks.application.use_cases import build_use_cases
from atelier_tasks.application.worker import TaskWorker
from atelier_tasks.domain.model import Task, TaskType
from tests.support.fakes import FakeClock, FakeIds
from tests.tasks.fakes import (
    FakeBillingClient,
    FakeImageTools,
    FakeMetrics,
    FakeModeration,
    FakeProvider,
    FakeStorage,
    FakeTaskRepository,
    FakeTasksUnitOfWork,
    clock_at_start,
)

if TYPE_CHECKING:
    from atelier_tasks.bootstrap import TasksContainer


@dataclass
class Harness:
    repository: FakeTaskRepository = field(default_factory=FakeTaskRepository)
    billing: FakeBillingClient = field(default_factory=FakeBillingClient)
    provider: FakeProvider = field(default_factory=FakeProvider)
    storage: FakeStorage = field(default_factory=FakeStorage)
    clock: FakeClock = field(default_factory=clock_at_start)
    ids: FakeIds = field(default_factory=FakeIds)
    hub: InProcessEventHub = field(default_factory=InProcessEventHub)
    config: TasksConfig = field(
        default_factory=lambda: TasksConfig(retry_backoff=timedelta(seconds=2), daily_limit=50)
    )
    images: FakeImageTools = field(default_factory=FakeImageTools)
    metrics: FakeMetrics = field(default_factory=FakeMetrics)
    moderation: FakeModeration | None = None  # None: moderation off

    def __post_init__(self) -> None:
        providers = {self.provider.name: self.provider}
        self.saga = TaskSaga(
            uow=self.uow,
            billing=self.billing,
            providers=providers,
            storage=self.storage,
            images=self.images,
            hub=self.hub,
            clock=self.clock,
            config=self.config,
            metrics=self.metrics,
            moderation=self.moderation,
            ids=self.ids,
        )
        self.use_cases = build_use_cases(
            saga=self.saga,
            uow=self.uow,
            providers=providers,
            storage=self.storage,
            hub=self.hub,
            clock=self.clock,
            ids=self.ids,
            config=self.config,
        )
        self.worker = TaskWorker(
            saga=self.saga,
            uow=self.uow,
            clock=self.clock,
            config=self.config,
            owner="worker-1",
        )

    def uow(self, *, read_only: bool = False, one_statement: bool = False) -> TasksUnitOfWork:
        return FakeTasksUnitOfWork(self.repository)

    def task(self, task_id: str) -> Task:
        """The stored task (it must exist)."""
        task = self.repository.get(task_id)
        assert task is not None, f"no task {task_id}"
        return task

    def create(self, user: str = "u1", prompt: str = "a cat", **params: Any) -> str:
        view = self.use_cases.create_task(
            CreateTaskCommand(
                user_id=user, type=TaskType.TEXT_TO_IMAGE, params={"prompt": prompt, **params}
            )
        )
        return view.task.id


class MakeTasks(Protocol):
    """``make_tasks(env, *, overrides…)``: the overrides are build_container's, typed."""

    def __call__(
        self,
        env: dict[str, Any] | None = None,
        *,
        clock: Clock | None = None,
        ids: IdGenerator | None = None,
        billing: BillingClient | None = None,
        providers: Mapping[str, GenerationProvider] | None = None,
        storage: ObjectStorage | None = None,
        config: TasksConfig | None = None,
        moderation: Moderation | None = None,
    ) -> TasksContainer: ...

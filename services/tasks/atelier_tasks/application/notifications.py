"""HandleNotification: a provider's webhook (verified by its adapter) recorded by the saga."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from atelier_ports.errors import InvalidNotification
from atelier_tasks.application.ports import TasksUnitOfWorkFactory
from atelier_tasks.application.ports.generation import GenerationProvider
from atelier_tasks.application.saga import TaskSaga


@dataclass(frozen=True, slots=True)
class HandleNotificationCommand:
    provider: str
    headers: Mapping[str, str]
    body: bytes


class HandleNotification:
    def __init__(
        self,
        *,
        providers: Mapping[str, GenerationProvider],
        uow: TasksUnitOfWorkFactory,
        saga: TaskSaga,
    ) -> None:
        self.providers = providers
        self.uow = uow
        self.saga = saga

    def __call__(self, command: HandleNotificationCommand) -> tuple[bool, str]:
        """(whether the task changed, its id — empty when no task has that job)."""
        provider_name = command.provider
        provider = self.providers.get(provider_name)
        if provider is None:
            raise InvalidNotification(f"unknown provider {provider_name!r}")
        note = provider.parse_notification(command.headers, command.body)
        with self.uow(read_only=True) as uow:
            task = uow.tasks.find_by_provider_job(provider_name, note.provider_job_id)
        if task is None or task.is_terminal:
            return False, task.id if task else ""
        return self.saga.apply_result(task, note.result), task.id

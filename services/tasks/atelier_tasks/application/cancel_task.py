"""CancelTask: the user's cancel (the saga releases the hold and tells the provider)."""

from __future__ import annotations

from dataclasses import dataclass

from atelier_tasks.application.ports import TasksUnitOfWorkFactory
from atelier_tasks.application.queries import own_task
from atelier_tasks.application.saga import TaskSaga
from atelier_tasks.application.views import TaskView, TaskViews


@dataclass(frozen=True, slots=True)
class CancelTaskCommand:
    user_id: str
    task_id: str


class CancelTask:
    def __init__(self, *, uow: TasksUnitOfWorkFactory, saga: TaskSaga, views: TaskViews) -> None:
        self.uow = uow
        self.saga = saga
        self.views = views

    def __call__(self, command: CancelTaskCommand) -> TaskView:
        with self.uow(read_only=True) as uow:
            task = own_task(uow, command.user_id, command.task_id)
        cancelled = self.saga.cancel(task)
        with self.uow(read_only=True) as uow:
            return self.views.task(uow, cancelled)

"""CancelTask: the user's cancel (the saga releases the hold and tells the provider)."""

from __future__ import annotations

from atelier_tasks.application.ports import TaskRepository
from atelier_tasks.application.queries import own_task
from atelier_tasks.application.saga import TaskSaga
from atelier_tasks.application.views import TaskView, TaskViews


class CancelTask:
    def __init__(self, *, repository: TaskRepository, saga: TaskSaga, views: TaskViews) -> None:
        self.repository = repository
        self.saga = saga
        self.views = views

    def __call__(self, user_id: str, task_id: str) -> TaskView:
        task = own_task(self.repository, user_id, task_id)
        return self.views.task(self.saga.cancel(task))

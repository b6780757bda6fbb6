"""The saga's one write step: every change to a stored task is saved here, version-checked."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from atelier_tasks.application.ports import (
    ConcurrentUpdate,
    TaskEventHub,
    TasksUnitOfWorkFactory,
)
from atelier_tasks.domain.model import ResultImage, Task


class TaskWriter:
    """Save (commit), save-or-reapply (update), re-read and delete a task; watchers are woken
    after every write that landed."""

    def __init__(self, *, uow: TasksUnitOfWorkFactory, hub: TaskEventHub) -> None:
        self.uow = uow
        self.hub = hub

    def commit(self, task: Task, images: Sequence[ResultImage] = ()) -> bool:
        """Save the task's changes (and new images) if nobody wrote it since it was read, then
        wake its watchers. False if someone else wrote first (nothing was saved)."""
        # Without new events or images a save is one version-checked UPDATE.
        one_statement = not images and not task.new_events
        try:
            with self.uow(one_statement=one_statement) as uow:
                uow.tasks.save(task, images)
                uow.commit()
        except ConcurrentUpdate:
            return False
        self.hub.publish(task.id)
        return True

    def update(self, task: Task, change: Callable[[Task], bool]) -> Task | None:
        """Apply ``change`` and commit, re-reading and applying it again while others write
        first. ``change`` returns False to write nothing. Returns the task as it now stands
        (committed, or as ``change`` declined it), None if it no longer exists."""
        while True:
            if not change(task):
                return task
            if self.commit(task):
                return task
            fresh = self.reread(task)
            if fresh is None:
                return None
            task = fresh

    def reread(self, task: Task) -> Task | None:
        """The task as stored now (None once deleted)."""
        with self.uow(read_only=True) as uow:
            return uow.tasks.get(task.id)

    def publish(self, task: Task) -> None:
        """Wake the task's watchers after a change committed elsewhere (the worker's claim)."""
        self.hub.publish(task.id)

    def delete(self, task: Task) -> None:
        """Remove a task that was never created (billing said no), then wake its watchers."""
        with self.uow() as uow:
            uow.tasks.delete(task.id)
            uow.commit()
        self.hub.publish(task.id)

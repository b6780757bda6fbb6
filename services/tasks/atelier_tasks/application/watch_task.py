"""WatchTask: a task's events, replayed and then followed until the terminal one."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from atelier_tasks.application.config import TasksConfig
from atelier_tasks.application.ports import TaskEventHub, TasksUnitOfWorkFactory
from atelier_tasks.application.queries import own_task
from atelier_tasks.domain.model import TaskEvent

MAX_SEQUENCE = 2**31 - 1


@dataclass(frozen=True, slots=True)
class WatchTaskQuery:
    user_id: str
    task_id: str
    after_sequence: int = 0


class WatchTask:
    def __init__(
        self, *, uow: TasksUnitOfWorkFactory, hub: TaskEventHub, config: TasksConfig
    ) -> None:
        self.uow = uow
        self.hub = hub
        self.config = config

    def __call__(self, query: WatchTaskQuery, *, stop: Callable[[], bool]) -> Iterator[TaskEvent]:
        """Replay events after ``after_sequence``, then follow; ends after the terminal event.

        A finished task ends the stream as soon as what was asked for is replayed — at once when
        ``after_sequence`` is at or past its terminal event (a browser's EventSource reconnects
        with the last id it saw, and must not be left waiting for an event that never comes).
        ``stop`` (the caller went away) is asked between waits.
        """
        user_id, task_id = query.user_id, query.task_id
        with self.uow(read_only=True) as uow:
            own_task(uow, user_id, task_id)
        subscription = self.hub.subscribe(task_id)
        # Sequences are 32-bit in the database; anything larger is simply "after every event".
        last = min(max(query.after_sequence, 0), MAX_SEQUENCE)
        try:
            while True:
                with self.uow(read_only=True) as uow:
                    events = uow.tasks.events_after(task_id, last)
                for event in events:
                    yield event
                    last = event.sequence
                    if event.terminal:
                        return
                # Read after the events: a task that is terminal now has its terminal event
                # stored, so if none came back above it was at or before ``last``.
                with self.uow(read_only=True) as uow:
                    current = uow.tasks.get(task_id, user_id)
                if current is None:
                    return  # deleted (its hold could not be placed)
                if current.is_terminal and current.last_sequence <= last:
                    return
                if stop():
                    return
                subscription.wait(self.config.watch_poll_seconds)
        finally:
            subscription.close()

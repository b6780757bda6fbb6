"""WatchTask: a task's events, replayed and then followed until the terminal one.

Two ways to follow, one set of steps: ``__call__`` blocks a thread between wake-ups (the CLI,
tests); ``follow`` waits on the event loop and runs only its short database steps through
``offload`` (the gRPC server's thread pool), so an open stream holds no thread.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Protocol, TypeVar

from atelier_tasks.application.config import TasksConfig
from atelier_tasks.application.ports import Subscription, TaskEventHub, TasksUnitOfWorkFactory
from atelier_tasks.application.queries import own_task
from atelier_tasks.domain.model import TaskEvent

MAX_SEQUENCE = 2**31 - 1

T = TypeVar("T")


class Offload(Protocol):
    """Runs a blocking step away from the event loop (a thread pool); awaits its result."""

    def __call__(self, step: Callable[[], T], /) -> Awaitable[T]: ...


@dataclass(frozen=True, slots=True)
class WatchTaskQuery:
    user_id: str
    task_id: str
    after_sequence: int = 0


@dataclass(frozen=True, slots=True)
class _Step:
    events: list[TaskEvent]  # to send, up to and including the terminal one
    last: int  # the sequence of the last event sent
    done: bool  # the stream ends after ``events``


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
        subscription, last = self._open(query)
        try:
            while True:
                step = self._step(query, last)
                yield from step.events
                if step.done or stop():
                    return
                last = step.last
                subscription.wait(self.config.watch_poll_seconds)
        finally:
            subscription.close()

    async def follow(self, query: WatchTaskQuery, *, offload: Offload) -> AsyncIterator[TaskEvent]:
        """``__call__`` on the event loop: the same stream, holding a thread only while a step
        reads the database. A caller that goes away cancels the waiting task."""
        run = offload
        subscription, last = await run(lambda: self._open(query))
        try:
            while True:
                step = await run(functools.partial(self._step, query, last))
                for event in step.events:
                    yield event
                if step.done:
                    return
                last = step.last
                await subscription.wait_async(self.config.watch_poll_seconds)
        finally:
            subscription.close()

    def _open(self, query: WatchTaskQuery) -> tuple[Subscription, int]:
        """Check the task is the caller's, then subscribe — before the first read, so no change
        after that read goes unnoticed."""
        with self.uow(read_only=True) as uow:
            own_task(uow, query.user_id, query.task_id)
        subscription = self.hub.subscribe(query.task_id)
        # Sequences are 32-bit in the database; anything larger is simply "after every event".
        return subscription, min(max(query.after_sequence, 0), MAX_SEQUENCE)

    def _step(self, query: WatchTaskQuery, last: int) -> _Step:
        """The events after ``last``, and whether the stream ends with them: one unit of work."""
        with self.uow(read_only=True) as uow:
            events = uow.tasks.events_after(query.task_id, last)
            sent: list[TaskEvent] = []
            for event in events:
                sent.append(event)
                last = event.sequence
                if event.terminal:
                    return _Step(sent, last, True)
            # Read after the events: a task that is terminal now has its terminal event stored,
            # so if none came back above it was at or before ``last``.
            current = uow.tasks.get(query.task_id, query.user_id)
        if current is None:
            return _Step(sent, last, True)  # deleted (its hold could not be placed)
        return _Step(sent, last, current.is_terminal and current.last_sequence <= last)

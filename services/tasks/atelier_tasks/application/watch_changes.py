"""WatchTaskChanges: every task's changes, as full views, for read models of other services.

The cost is per write, not per read: a follower (one per gateway process) is told each changed
task once, with its view as ``GetTask`` would answer it, and keeps it. The feed comes from the
event hub (this process's writes, and on PostgreSQL every replica's through LISTEN/NOTIFY), so
a follower subscribed before a change is told of it; when the hub may have missed changes the
feed breaks (``ChangesMissed``) and the follower must read again what it kept.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from atelier_tasks.application.config import TasksConfig
from atelier_tasks.application.ports import ChangesMissed, TaskEventHub, TasksUnitOfWorkFactory
from atelier_tasks.application.views import TaskView, TaskViews
from atelier_tasks.application.watch_task import Offload

# A follower with nothing to hear is sent a heartbeat this often (it notices a dead stream).
IDLE_SECONDS = 10.0


class Marker(enum.Enum):
    SUBSCRIBED = "subscribed"  # every change from now on follows
    QUIET = "quiet"  # a heartbeat: nothing changed for IDLE_SECONDS


@dataclass(frozen=True, slots=True)
class TaskChange:
    task_id: str
    view: TaskView | None  # None: the task no longer exists


class ChangeFeedUnavailable(ChangesMissed):
    """This process does not hear of every change (SQLite with several processes)."""

    reason = "CHANGE_FEED_UNAVAILABLE"


class WatchTaskChanges:
    def __init__(
        self,
        *,
        uow: TasksUnitOfWorkFactory,
        hub: TaskEventHub,
        views: TaskViews,
        config: TasksConfig,
    ) -> None:
        self.uow = uow
        self.hub = hub
        self.views = views
        self.config = config

    async def follow(self, *, offload: Offload) -> AsyncIterator[TaskChange | Marker]:
        """SUBSCRIBED first (every change from now on follows), then the changes, read after
        they were committed, and QUIET after IDLE_SECONDS without one. Raises ChangesMissed
        when changes may have been missed."""
        if not self.config.change_feed:
            raise ChangeFeedUnavailable("this tasks process does not hear every change")
        feed = self.hub.follow_changes(self.config.change_feed_backlog)
        try:
            yield Marker.SUBSCRIBED
            while True:
                ids = await feed.changed(IDLE_SECONDS)
                if not ids:
                    yield Marker.QUIET
                    continue
                for change in await offload(functools.partial(self.read, ids)):
                    yield change
        finally:
            feed.close()

    def read(self, ids: Sequence[str]) -> list[TaskChange]:
        """The tasks as they stand now: one read-only unit of work."""
        with self.uow(read_only=True) as uow:
            found = {task.id: task for task in (uow.tasks.get(i) for i in ids) if task}
            views = self.views.tasks(uow, list(found.values()))
        by_id = {view.task.id: view for view in views}
        return [TaskChange(i, by_id.get(i)) for i in ids]

"""WatchTaskChanges: every task's changes, as full views, for read models of other services.

The cost is per write, not per read: a follower (one per gateway process) is told each changed
task once, with its view as ``GetTask`` would answer it, and keeps it. The feed comes from the
event hub (this process's writes, and on PostgreSQL every replica's through LISTEN/NOTIFY), so
a follower subscribed before a change is told of it; when the hub may have missed changes the
feed breaks (``ChangesMissed``) and the follower must read again what it kept.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from atelier_tasks.application.config import TasksConfig
from atelier_tasks.application.ports import (
    ChangeFeed,
    ChangesMissed,
    TaskEventHub,
    TasksUnitOfWorkFactory,
)
from atelier_tasks.application.views import TaskView, TaskViews
from atelier_tasks.application.watch_task import Offload

log = logging.getLogger("atelier.tasks.changes")

# A follower with nothing to hear is sent a heartbeat this often (it notices a dead stream).
IDLE_SECONDS = 10.0


class Marker(enum.Enum):
    SUBSCRIBED = "subscribed"  # every change from now on follows
    QUIET = "quiet"  # a heartbeat: nothing changed for IDLE_SECONDS


@dataclass(frozen=True, slots=True)
class TaskChange:
    task_id: str
    view: TaskView | None  # None: the task no longer exists


_Item = TaskChange | Marker | ChangesMissed


class ChangeFeedUnavailable(ChangesMissed):
    """This process does not hear of every change (SQLite with several processes)."""

    reason = "CHANGE_FEED_UNAVAILABLE"


class WatchTaskChanges:
    """Followers in one process share one hub feed and one reader: each changed task is read
    once per batch (``change_feed_batch_seconds`` gathers the wake-ups of one write — its own
    and its NOTIFY — and of writes close together) and sent to every follower."""

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
        self._followers: set[asyncio.Queue[_Item]] = set()
        self._reader: asyncio.Task[None] | None = None

    async def follow(self, *, offload: Offload) -> AsyncIterator[TaskChange | Marker]:
        """SUBSCRIBED first (every change from now on follows), then the changes, read after
        they were committed, and QUIET after IDLE_SECONDS without one. Raises ChangesMissed
        when changes may have been missed (also to a follower too slow to keep up)."""
        if not self.config.change_feed:
            raise ChangeFeedUnavailable("this tasks process does not hear every change")
        queue: asyncio.Queue[_Item] = asyncio.Queue(self.config.change_feed_backlog)
        if self._reader is None or self._reader.done():
            # Subscribed here, before SUBSCRIBED is sent: no later change goes unseen.
            feed = self.hub.follow_changes(self.config.change_feed_backlog)
            self._reader = asyncio.create_task(self._read_for_all(feed, offload))
        self._followers.add(queue)
        try:
            yield Marker.SUBSCRIBED
            while True:
                item = await queue.get()
                if isinstance(item, ChangesMissed):
                    raise item
                yield item
        finally:
            self._followers.discard(queue)
            if not self._followers and self._reader is not None:
                self._reader.cancel()
                self._reader = None

    async def _read_for_all(self, feed: ChangeFeed, offload: Offload) -> None:
        try:
            while True:
                try:
                    ids = await feed.changed(IDLE_SECONDS)
                    if ids and self.config.change_feed_batch_seconds > 0:
                        await asyncio.sleep(self.config.change_feed_batch_seconds)
                        ids += [i for i in await feed.changed(0) if i not in ids]
                except ChangesMissed as missed:
                    self._send_all(missed)
                    return
                if not ids:
                    self._send_all(Marker.QUIET)
                    continue
                try:
                    changes = await offload(functools.partial(self.read, ids))
                except Exception:  # the database: followers must start over
                    log.warning("change feed read failed", exc_info=True)
                    self._send_all(ChangesMissed("the change feed could not read the changes"))
                    return
                for change in changes:
                    self._send_all(change)
        finally:
            feed.close()

    def _send_all(self, item: _Item) -> None:
        for queue in list(self._followers):
            try:
                queue.put_nowait(item)
            except asyncio.QueueFull:  # too slow: it must start over
                self._followers.discard(queue)
                queue.get_nowait()
                queue.put_nowait(ChangesMissed("this follower fell behind"))
        if isinstance(item, ChangesMissed):
            self._followers.clear()  # each has its end; the next follower subscribes anew

    def read(self, ids: Sequence[str]) -> list[TaskChange]:
        """The tasks as they stand now: one read-only unit of work."""
        with self.uow(read_only=True) as uow:
            found = {task.id: task for task in (uow.tasks.get(i) for i in ids) if task}
            views = self.views.tasks(uow, list(found.values()))
        by_id = {view.task.id: view for view in views}
        return [TaskChange(i, by_id.get(i)) for i in ids]

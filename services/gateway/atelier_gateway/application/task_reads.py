"""The gateway's read model of tasks: ``GET /v1/tasks/{id}`` answered from memory, kept fresh by
the tasks service's change feed (``WatchTaskChanges``). The tasks service still owns the data;
this process keeps copies of views it was given and never reads another service's database.

The consistency rule (docs/ARCHITECTURE.md, "Task reads"):

- a read never returns a state older than what the change feed has delivered to this process,
  nor older than what this process answered the same client for its own create or cancel;
- the copies are trusted only while the feed is connected: before it has said "subscribed",
  while it is broken and while it reconnects, every read goes to ``GetTask``; when it breaks
  every copy is dropped (changes may have been missed), and after it reconnects only copies
  filled from answers to calls *started* after the reconnect are kept (``epoch``);
- a copy is replaced only by a newer version of the task (a fill that raced with the feed
  loses to the feed's newer view, also when that view arrived while the copy was not kept:
  ``_pending``); a deleted task's copy goes, and a fill in flight for it is not kept;
- a copy whose signed image URLs have used up half of their remaining life is not served.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime

from atelier_gateway.application.calls import Caller
from atelier_gateway.application.ports import TasksGateway
from atelier_gateway.application.task_views import Task, TaskChange, TaskEvent
from atelier_ports.clock import Clock

log = logging.getLogger("atelier.gateway.task_reads")

DELETED = 2**63  # a version newer than any: a deleted task is never filled again
TERMINAL = frozenset({"succeeded", "failed", "cancelled"})


@dataclass(slots=True)
class CachedTask:
    task: Task
    fresh_until: datetime | None  # None: no signed URLs, no expiry
    body: bytes | None = None  # the rendered response, made once per view (by the HTTP layer)


@dataclass(slots=True)
class _Pending:
    """Fills in flight for one task, and the newest version the feed sent meanwhile."""

    fills: int = 0
    newest: int = 0


@dataclass(frozen=True, slots=True)
class Ticket:
    task_id: str
    epoch: int


@dataclass
class TaskReadModel:
    """A bounded LRU of task views with the rule above. Single event loop, no locks."""

    clock: Clock
    size: int
    _entries: OrderedDict[str, CachedTask] = field(default_factory=OrderedDict)
    _pending: dict[str, _Pending] = field(default_factory=dict)
    live: bool = False
    epoch: int = 0

    @property
    def enabled(self) -> bool:
        return self.size > 0

    def __len__(self) -> int:
        return len(self._entries)

    # --- the feed ---------------------------------------------------------------------------

    def connected(self) -> None:
        """The feed is subscribed: from now on it delivers every change."""
        self._entries.clear()
        self.epoch += 1
        self.live = True

    def disconnected(self) -> None:
        """The feed broke: changes may be missed from now on; nothing kept is trusted."""
        self._entries.clear()
        self.epoch += 1
        self.live = False

    def apply(self, change: TaskChange) -> None:
        pending = self._pending.get(change.task_id)
        if change.view is None:
            self._entries.pop(change.task_id, None)
            if pending is not None:
                pending.newest = DELETED
            return
        version = change.version
        if pending is not None:
            pending.newest = max(pending.newest, version)
        entry = self._entries.get(change.task_id)
        # Only tasks kept already are updated (and only their views decoded): a task nobody
        # read here costs no memory and next to no time.
        if entry is not None and version > entry.task.version:
            self._entries[change.task_id] = self._entry(change.view())

    def forget_if_behind(self, event: TaskEvent) -> None:
        """An event relayed to a client (its SSE stream) may be ahead of the feed: a copy that
        does not show its status is dropped, so that client's next read asks GetTask."""
        entry = self._entries.get(event.task_id)
        if entry is None or entry.task.status in TERMINAL:
            return
        if entry.task.status != event.status or entry.task.attempts != event.attempts:
            del self._entries[event.task_id]

    # --- reads ------------------------------------------------------------------------------

    def lookup(self, task_id: str) -> CachedTask | None:
        """The trusted copy, or None (a miss). The caller checks the owner."""
        if not self.live:
            return None
        entry = self._entries.get(task_id)
        if entry is None:
            return None
        if entry.fresh_until is not None and self.clock.now() >= entry.fresh_until:
            del self._entries[task_id]  # its URLs are too close to expiring
            return None
        self._entries.move_to_end(task_id)
        return entry

    def kept(self, task_id: str) -> Task | None:
        """The view kept for ``task_id``, trusted or not (operations, tests); changes nothing."""
        entry = self._entries.get(task_id)
        return None if entry is None else entry.task

    def begin(self, task_id: str) -> Ticket:
        """Before a call whose answer may be kept (GetTask, CreateTask, CancelTask)."""
        pending = self._pending.get(task_id)
        if pending is None:
            pending = self._pending[task_id] = _Pending()
        pending.fills += 1
        return Ticket(task_id, self.epoch)

    def end(self, ticket: Ticket, task: Task | None) -> CachedTask | None:
        """After the call: keep ``task`` if the rule allows. Returns what is kept, if anything
        (also when a newer copy was kept already)."""
        task_id = ticket.task_id
        pending = self._pending.get(task_id)
        newest = 0
        if pending is not None:
            newest = pending.newest
            pending.fills -= 1
            if pending.fills <= 0:
                del self._pending[task_id]
        if task is None or not self.enabled or not self.live or ticket.epoch != self.epoch:
            return None
        if task.id != task_id or task.version < newest:
            return None  # the feed sent a newer view (or a deletion) while the call ran
        entry = self._entries.get(task_id)
        if entry is not None and entry.task.version > task.version:
            return entry
        entry = self._entry(task)
        if entry.fresh_until is not None and self.clock.now() >= entry.fresh_until:
            return None
        self._entries[task_id] = entry
        self._entries.move_to_end(task_id)
        while len(self._entries) > self.size:
            evicted, gone = self._entries.popitem(last=False)
            # A fill in flight for an evicted task must still lose to what was evicted.
            racing = self._pending.get(evicted)
            if racing is not None:
                racing.newest = max(racing.newest, gone.task.version)
        return entry

    def _entry(self, task: Task) -> CachedTask:
        if not task.images:
            return CachedTask(task, None)
        now = self.clock.now()
        expires = task.urls_expire_at
        if expires is None:  # signed URLs of unknown life: never kept
            return CachedTask(task, now)
        # Served only in the first half of the URLs' remaining life.
        return CachedTask(task, now + (expires - now) / 2)


class ReadTask:
    """``GET /v1/tasks/{id}``: the kept copy if trusted and the caller's, else ``GetTask``."""

    def __init__(self, *, tasks: TasksGateway, model: TaskReadModel) -> None:
        self.tasks = tasks
        self.model = model

    async def __call__(self, caller: Caller, task_id: str) -> CachedTask:
        entry = self.model.lookup(task_id)
        if entry is not None and entry.task.user_id == caller.user_id:
            return entry
        # A miss, or another user's task: the tasks service answers (NOT_FOUND for a stranger).
        return await self.remember(task_id, self.tasks.get_task(caller, task_id))

    async def remember(self, task_id: str, call: Awaitable[Task]) -> CachedTask:
        """Run ``call`` (an answer about ``task_id``) and keep its answer if the rule allows."""
        ticket = self.model.begin(task_id)
        task: Task | None = None
        try:
            task = await call
        finally:
            kept = self.model.end(ticket, task)
        assert task is not None
        if kept is not None and kept.task is task:
            return kept
        return CachedTask(task, None)  # served once, not kept


class FollowTaskChanges:
    """Keeps one change feed open for this process (reconnecting with backoff) and feeds the
    read model. ``run`` until cancelled."""

    def __init__(
        self,
        *,
        tasks: TasksGateway,
        model: TaskReadModel,
        idle_seconds: float = 30.0,
        backoff: tuple[float, float] = (0.05, 5.0),
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.tasks = tasks
        self.model = model
        self.idle_seconds = idle_seconds
        self.backoff = backoff
        self.sleep = sleep
        self.connections = 0  # how many times the feed said "subscribed"

    async def run(self) -> None:
        delay = self.backoff[0]
        failing = False  # said once per outage: the retries that follow are logged at debug
        while True:
            try:
                async for change in self.tasks.task_changes(self.idle_seconds):
                    if change is None:
                        self.model.connected()
                        self.connections += 1
                        delay = self.backoff[0]
                        failing = False
                    else:
                        self.model.apply(change)
            except asyncio.CancelledError:
                self.model.disconnected()
                raise
            except Exception as exc:  # the feed broke: reads go to GetTask until it is back
                log.log(
                    logging.DEBUG if failing else logging.WARNING,
                    "task change feed lost; reads go to GetTask while it reconnects",
                    extra={"fields": {"error": str(exc)}},
                )
                failing = True
            self.model.disconnected()
            await self.sleep(delay)
            delay = min(delay * 2, self.backoff[1])

"""In-process fan-out of "task X has new events" wake-ups to watchers.

Publishers are threads (the use cases run in the gRPC server's thread pool, the worker and the
LISTEN connection in threads of their own); a watcher waits either in a thread (``wait``) or on
an event loop (``wait_async``: no thread is held while it waits).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import defaultdict

from atelier_tasks.application.ports import ChangesMissed


class _Subscription:
    def __init__(self, hub: InProcessEventHub, task_id: str) -> None:
        self._hub = hub
        self._task_id = task_id
        self._event = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._async_event: asyncio.Event | None = None

    def wake(self) -> None:
        self._event.set()
        loop, event = self._loop, self._async_event
        if loop is not None and event is not None:
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
                loop.call_soon_threadsafe(event.set)

    def wait(self, timeout: float) -> bool:
        woke = self._event.wait(timeout)
        self._event.clear()
        return woke

    async def wait_async(self, timeout: float) -> bool:
        if self._async_event is None:
            self._async_event = asyncio.Event()
            self._loop = asyncio.get_running_loop()
        # Registered first, checked second: a wake-up in between is seen by one or the other.
        if self._event.is_set():
            self._event.clear()
            self._async_event.clear()
            return True
        try:
            async with asyncio.timeout(timeout):  # not wait_for: it can drop a cancellation
                await self._async_event.wait()
            woke = True
        except TimeoutError:
            woke = False
        self._event.clear()
        self._async_event.clear()
        return woke

    def close(self) -> None:
        self._hub._remove(self._task_id, self)


class _ChangeFeed:
    """The ids of tasks changed since the last ``changed``, for one follower of every task, on
    an event loop. At most ``backlog`` ids wait; beyond that, or after ``publish_all``, the
    feed is broken (``changed`` raises ``ChangesMissed``): the follower must start over."""

    def __init__(self, hub: InProcessEventHub, backlog: int) -> None:
        self._hub = hub
        self._backlog = backlog
        self._ids: dict[str, None] = {}  # insertion-ordered set
        self._broken = False
        self._lock = threading.Lock()
        self._loop = asyncio.get_running_loop()
        self._ready = asyncio.Event()

    def add(self, task_id: str) -> None:
        with self._lock:
            if self._broken:
                return
            self._ids[task_id] = None
            if len(self._ids) > self._backlog:
                self._broken = True
                self._ids.clear()
        self._wake()

    def miss(self) -> None:
        with self._lock:
            self._broken = True
            self._ids.clear()
        self._wake()

    def _wake(self) -> None:
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
            self._loop.call_soon_threadsafe(self._ready.set)

    async def changed(self, timeout: float) -> list[str]:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):  # not wait_for: it can drop a cancellation
                await self._ready.wait()
        self._ready.clear()
        with self._lock:
            if self._broken:
                raise ChangesMissed("changes may have been missed; read again")
            ids = list(self._ids)
            self._ids.clear()
        return ids

    def close(self) -> None:
        self._hub._remove_feed(self)


class InProcessEventHub:
    """Watchers in this process; PostgreSQL replicas feed it from LISTEN/NOTIFY as well."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subs: dict[str, set[_Subscription]] = defaultdict(set)
        self._feeds: set[_ChangeFeed] = set()
        # Set when a LISTEN connection feeds this hub (``notified``): change feeds then take
        # their ids from NOTIFY only, which covers every replica's event-writing changes, so
        # one write is not read twice (its own wake-up, then its NOTIFY).
        self.feeds_from_notify = False

    def publish(self, task_id: str) -> None:
        """A change made by this process."""
        self._publish(task_id, feeds=not self.feeds_from_notify)

    def notified(self, task_id: str) -> None:
        """A change announced by NOTIFY (any replica's, this one's included)."""
        self._publish(task_id, feeds=True)

    def _publish(self, task_id: str, *, feeds: bool) -> None:
        with self._lock:
            subs = list(self._subs.get(task_id, ()))
            followers = list(self._feeds) if feeds else []
        for sub in subs:
            sub.wake()
        for feed in followers:
            feed.add(task_id)

    def publish_all(self) -> None:
        """Wake every watcher (they re-read): after notifications may have been missed. Change
        feeds cannot re-read everything: they break."""
        with self._lock:
            subs = [sub for group in self._subs.values() for sub in group]
            feeds = list(self._feeds)
        for sub in subs:
            sub.wake()
        for feed in feeds:
            feed.miss()

    def follow_changes(self, backlog: int) -> _ChangeFeed:
        """A feed of every task's changes from now on (called on the follower's event loop)."""
        feed = _ChangeFeed(self, backlog)
        with self._lock:
            self._feeds.add(feed)
        return feed

    def _remove_feed(self, feed: _ChangeFeed) -> None:
        with self._lock:
            self._feeds.discard(feed)

    def subscribe(self, task_id: str) -> _Subscription:
        sub = _Subscription(self, task_id)
        with self._lock:
            self._subs[task_id].add(sub)
        return sub

    def watchers(self, task_id: str) -> int:
        with self._lock:
            return len(self._subs.get(task_id, ()))

    def _remove(self, task_id: str, sub: _Subscription) -> None:
        with self._lock:
            subs = self._subs.get(task_id)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._subs[task_id]

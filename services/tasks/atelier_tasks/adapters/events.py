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
            await asyncio.wait_for(self._async_event.wait(), timeout)
            woke = True
        except TimeoutError:
            woke = False
        self._event.clear()
        self._async_event.clear()
        return woke

    def close(self) -> None:
        self._hub._remove(self._task_id, self)


class InProcessEventHub:
    """Watchers in this process; PostgreSQL replicas feed it from LISTEN/NOTIFY as well."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subs: dict[str, set[_Subscription]] = defaultdict(set)

    def publish(self, task_id: str) -> None:
        with self._lock:
            subs = list(self._subs.get(task_id, ()))
        for sub in subs:
            sub.wake()

    def publish_all(self) -> None:
        """Wake every watcher (they re-read): after notifications may have been missed."""
        with self._lock:
            subs = [sub for group in self._subs.values() for sub in group]
        for sub in subs:
            sub.wake()

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

"""In-process fan-out of "task X has new events" wake-ups to watchers."""

from __future__ import annotations

import threading
from collections import defaultdict


class _Subscription:
    def __init__(self, hub: InProcessEventHub, task_id: str) -> None:
        self._hub = hub
        self._task_id = task_id
        self._event = threading.Event()

    def wake(self) -> None:
        self._event.set()

    def wait(self, timeout: float) -> bool:
        woke = self._event.wait(timeout)
        self._event.clear()
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

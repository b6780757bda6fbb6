"""Test doubles of the ports every service shares (``atelier_ports.clock``, ``atelier_ports.ids``).

One ``FakeClock`` and one ``FakeIds`` for all services' tests; each implements its port exactly,
so mypy checks them against the Protocols (see ``_conforms`` below).
"""

from __future__ import annotations

import itertools
import threading
from datetime import UTC, datetime, timedelta

from atelier_ports.clock import Clock
from atelier_ports.ids import IdGenerator

DEFAULT_START = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


class FakeClock:
    """A clock that moves only when told to (thread-safe: servers read it from their threads)."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or DEFAULT_START
        self._lock = threading.Lock()

    @classmethod
    def real(cls) -> FakeClock:
        """Starts at the real time (for wiring that also talks to real services)."""
        return cls(datetime.now(UTC))

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, **kwargs: float) -> None:
        with self._lock:
            self._now += timedelta(**kwargs)

    def set(self, when: datetime) -> None:
        with self._lock:
            self._now = when


class FakeIds:
    """Predictable ids (``prefix_0001``) and readable codes."""

    def __init__(self) -> None:
        self._n = itertools.count(1)
        self._lock = threading.Lock()

    def _next(self) -> int:
        with self._lock:
            return next(self._n)

    def new_id(self, prefix: str) -> str:
        return f"{prefix}_{self._next():04d}"

    def readable_code(self, length: int) -> str:
        return f"{self._next():0{length}d}"[-length:]


def _conforms(clock: FakeClock, ids: FakeIds) -> tuple[Clock, IdGenerator]:
    return clock, ids  # mypy proves the fakes match their ports

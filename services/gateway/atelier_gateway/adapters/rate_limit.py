"""Request rate limits: token buckets kept in this process.

Per replica: with N gateway replicas a client gets at most N times the budget, which is the
point of a coarse abuse limit (login brute force, runaway scripts). The per-user daily
generation limit, which must be exact, is enforced by the tasks service in its database.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from atelier_ports.clock import Clock

_MAX_BUCKETS = 100_000


@dataclass
class _Bucket:
    tokens: float
    updated: float


class TokenBucketRateLimiter:
    def __init__(self, per_minute: int, burst: int, clock: Clock) -> None:
        self._rate = per_minute / 60.0
        self._burst = float(burst)
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self._rate > 0

    def allow(self, key: str) -> float:
        """0.0 if the request may go ahead, else the seconds until it would be allowed."""
        if not self.enabled:
            return 0.0
        now = self._clock.now().timestamp()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                if len(self._buckets) >= _MAX_BUCKETS:
                    self._buckets.clear()  # crude bound on memory; limits restart generous
                bucket = self._buckets[key] = _Bucket(self._burst, now)
            bucket.tokens = min(self._burst, bucket.tokens + (now - bucket.updated) * self._rate)
            bucket.updated = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return 0.0
            return (1.0 - bucket.tokens) / self._rate

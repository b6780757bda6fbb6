"""Client idempotency (``Idempotency-Key``): a retry returns the first response."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import timedelta

from atelier_gateway.application.ports import GatewayUnitOfWorkFactory
from atelier_gateway.domain.errors import IdempotencyKeyInFlight, IdempotencyKeyReused
from atelier_gateway.domain.model import IdempotencyRecord
from atelier_ports.clock import Clock
from atelier_ports.problems import InvalidArgument

MAX_KEY_LENGTH = 255


@dataclass(frozen=True, slots=True)
class StoredResponse:
    status: int
    body: bytes


def request_fingerprint(scope: str, body: bytes) -> str:
    return hashlib.sha256(scope.encode() + b"\n" + body).hexdigest()


class IdempotencyKeys:
    """Claim, complete or abandon an Idempotency-Key (a small cohesive group of use cases)."""

    def __init__(
        self,
        uow: GatewayUnitOfWorkFactory,
        clock: Clock,
        stale_after: timedelta = timedelta(minutes=2),
    ) -> None:
        self._uow = uow
        self._clock = clock
        # A claim never completed (the gateway died mid-request) is taken over after this. Safe:
        # the owning service gets the same derived request_id, so it creates nothing twice.
        self._stale_after = stale_after

    def begin(self, user_id: str, key: str, scope: str, body: bytes) -> StoredResponse | None:
        """Claim the key for this request, or return the first request's response.

        Raises IdempotencyKeyReused for a different request under the same key, and
        IdempotencyKeyInFlight while the first request is still running.
        """
        if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
            raise InvalidArgument(
                "Idempotency-Key must be 1-255 printable characters", field="Idempotency-Key"
            )
        fingerprint = request_fingerprint(scope, body)
        record = IdempotencyRecord(
            user_id=user_id,
            key=key,
            scope=scope,
            request_hash=fingerprint,
            created_at=self._clock.now(),
        )
        # One statement claims the key (no transaction around it on PostgreSQL); only a retry
        # reads the first request's record after it.
        with self._uow(one_statement=True) as uow:
            if uow.idempotency.claim(record):
                uow.commit()
                return None
            existing = uow.idempotency.get(user_id, key)
        if existing is None:  # released between our insert and read: let the caller retry
            raise IdempotencyKeyInFlight("a request with this Idempotency-Key is in progress")
        if existing.request_hash != fingerprint:
            raise IdempotencyKeyReused("Idempotency-Key was already used for a different request")
        if not existing.completed or existing.response is None or existing.status is None:
            now = self._clock.now()
            if existing.created_at + self._stale_after <= now:
                with self._uow(one_statement=True) as uow:
                    taken = uow.idempotency.reclaim(user_id, key, existing.created_at, now)
                    uow.commit()
                if taken:
                    return None
            raise IdempotencyKeyInFlight("a request with this Idempotency-Key is in progress")
        return StoredResponse(status=existing.status, body=existing.response)

    def complete(self, user_id: str, key: str, status: int, body: bytes) -> None:
        with self._uow(one_statement=True) as uow:
            uow.idempotency.complete(user_id, key, status, body)
            uow.commit()

    def abandon(self, user_id: str, key: str) -> None:
        with self._uow(one_statement=True) as uow:
            uow.idempotency.release(user_id, key)
            uow.commit()

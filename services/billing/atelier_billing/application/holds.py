"""Holds (F6): reserve credits for a task, then capture them (spent) or release them (back).

A hold is idempotent per (user, request_id); its credits are allocated across the user's grants,
soonest-expiring first (the domain's ``allocate``), and a release gives them back to the same
grants.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from atelier_billing.application.config import BillingConfig
from atelier_billing.application.credits import expire_user_grants, lock_account
from atelier_billing.application.inputs import positive, require_key
from atelier_billing.application.ports import (
    BillingUnitOfWork,
    BillingUnitOfWorkFactory,
    DuplicateKey,
)
from atelier_billing.domain import errors
from atelier_billing.domain.model import (
    Grant,
    GrantSource,
    Hold,
    HoldStatus,
    LedgerKind,
    NewLedgerEntry,
    allocate,
)
from atelier_ports.clock import Clock
from atelier_ports.ids import IdGenerator


@dataclass(frozen=True, slots=True)
class HoldCredits:
    user_id: str
    request_id: str
    amount: int
    reference: str


@dataclass(frozen=True, slots=True)
class CaptureHold:
    user_id: str
    request_id: str


@dataclass(frozen=True, slots=True)
class ReleaseHold:
    user_id: str
    request_id: str


def _same_hold(hold: Hold, amount: int) -> Hold:
    if hold.amount != amount:
        raise errors.IdempotencyConflict(
            f"request_id {hold.request_id!r} already holds {hold.amount} credits"
        )
    return hold


class HoldCreditsHandler:
    def __init__(self, uow: BillingUnitOfWorkFactory, clock: Clock, ids: IdGenerator) -> None:
        self._uow, self._clock, self._ids = uow, clock, ids

    def __call__(self, cmd: HoldCredits) -> Hold:
        request_id = require_key(cmd.request_id, "request_id")
        amount, user_id = positive(cmd.amount), cmd.user_id
        now = self._clock.now()
        try:
            with self._uow() as uow:
                lock_account(uow, user_id)
                # Under the account lock a repeat sees the first call's committed hold.
                existing = uow.holds.get(user_id, request_id)
                if existing is not None:
                    return _same_hold(existing, amount)
                hold = self._hold(uow, user_id, request_id, amount, cmd.reference, now)
                uow.commit()
                return hold
        except DuplicateKey:
            # A concurrent call with the same request_id won; ours rolled back. Return its hold.
            with self._uow() as uow:
                found = uow.holds.get(user_id, request_id)
            if found is None:  # pragma: no cover - the unique key guarantees it exists
                raise
            return _same_hold(found, amount)

    def _hold(
        self,
        uow: BillingUnitOfWork,
        user_id: str,
        request_id: str,
        amount: int,
        reference: str,
        now: datetime,
    ) -> Hold:
        expire_user_grants(uow, user_id, now)
        after = uow.accounts.move_to_held(user_id, amount)
        if after is None:
            raise errors.InsufficientCredits(
                f"{amount} credits needed", metadata={"needed": str(amount)}
            )
        allocations = allocate(uow.grants.spendable(user_id, now), amount, now)
        for part in allocations:
            if not uow.grants.take(part.grant_id, part.amount):
                raise errors.InsufficientCredits("credits changed concurrently")
        hold = Hold(
            id=self._ids.new_id("hold"),
            user_id=user_id,
            request_id=request_id,
            amount=amount,
            status=HoldStatus.HELD,
            reference=reference[:200],
            created_at=now,
            allocations=tuple(allocations),
        )
        uow.holds.add(hold)
        uow.ledger.append(
            NewLedgerEntry(
                user_id=user_id,
                kind=LedgerKind.HOLD,
                amount=-amount,
                held_change=amount,
                balance_after=after,
                reference=hold.reference,
                hold_id=hold.id,
            ),
            now,
        )
        return hold


class _SettleHold:
    """Capture or release: one effect however often repeated."""

    target: HoldStatus

    def __init__(
        self, uow: BillingUnitOfWorkFactory, clock: Clock, ids: IdGenerator, config: BillingConfig
    ) -> None:
        self._uow, self._clock, self._ids, self._config = uow, clock, ids, config

    def _settle(self, user_id: str, request_id: str) -> Hold:
        request_id = require_key(request_id, "request_id")
        now, target = self._clock.now(), self.target
        with self._uow() as uow:
            hold = uow.holds.get(user_id, request_id)
            if hold is None:
                raise errors.HoldNotFound(f"no hold for request_id {request_id!r}")
            lock_account(uow, user_id)
            if not uow.holds.transition(hold.id, HoldStatus.HELD, target, now):
                current = uow.holds.get(user_id, request_id)
                assert current is not None
                return current.repeat_of_settle(target)
            release = target is HoldStatus.RELEASED
            after = uow.accounts.settle_held(user_id, hold.amount, back_to_available=release)
            if release:
                self._return_to_grants(uow, hold, now)
            uow.ledger.append(
                NewLedgerEntry(
                    user_id=user_id,
                    kind=LedgerKind.RELEASE if release else LedgerKind.CAPTURE,
                    amount=hold.amount if release else 0,
                    held_change=-hold.amount,
                    balance_after=after,
                    reference=hold.reference,
                    hold_id=hold.id,
                ),
                now,
            )
            uow.commit()
        return hold.settled(target, now)

    def _return_to_grants(self, uow: BillingUnitOfWork, hold: Hold, now: datetime) -> None:
        """Credits go back to the grants they came from; an expired grant's share is re-granted
        with a grace expiry (F6), so no credit silently vanishes."""
        regrant = 0
        for part in uow.holds.allocations(hold.id):
            grant = uow.grants.get(part.grant_id)
            if (
                grant is None
                or grant.is_expired(now)
                or not uow.grants.give_back(part.grant_id, part.amount)
            ):
                regrant += part.amount
        if regrant:
            uow.grants.add(
                Grant(
                    id=self._ids.new_id("grant"),
                    user_id=hold.user_id,
                    source=GrantSource.GRACE,
                    amount=regrant,
                    remaining=regrant,
                    expires_at=now + self._config.grace_period,
                    created_at=now,
                    reference=f"returned from {hold.reference or hold.request_id}",
                ),
                idempotency_key=f"grace:{hold.id}",
            )


class CaptureHoldHandler(_SettleHold):
    target = HoldStatus.CAPTURED

    def __call__(self, cmd: CaptureHold) -> Hold:
        return self._settle(cmd.user_id, cmd.request_id)


class ReleaseHoldHandler(_SettleHold):
    target = HoldStatus.RELEASED

    def __call__(self, cmd: ReleaseHold) -> Hold:
        return self._settle(cmd.user_id, cmd.request_id)

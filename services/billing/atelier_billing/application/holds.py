"""Holds (F6): reserve credits for a task, then capture them (spent) or release them (back).

A hold is idempotent per (user, request_id); its credits are allocated across the user's
unexpired grants, soonest-expiring first (the domain's ``spending_order``), and a release gives
them back to the same grants. Each of the three is one step of the hold repository (on
PostgreSQL one statement).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from atelier_billing.application.config import BillingConfig
from atelier_billing.application.inputs import positive, require_key
from atelier_billing.application.ports import (
    BillingUnitOfWorkFactory,
    DuplicateKey,
    HoldOutcome,
    HoldWrite,
)
from atelier_billing.domain import errors
from atelier_billing.domain.model import Hold, HoldStatus
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
    """One step of the repository (on PostgreSQL one statement): the account lock, the repeat
    check, the allocation, the debit, the hold, its allocations and its ledger entry. Grants
    that expired are never spent; sweeping them is the expiry job's work, not the hold's."""

    def __init__(self, uow: BillingUnitOfWorkFactory, clock: Clock, ids: IdGenerator) -> None:
        self._uow, self._clock, self._ids = uow, clock, ids

    def __call__(self, cmd: HoldCredits) -> Hold:
        request_id = require_key(cmd.request_id, "request_id")
        amount, user_id = positive(cmd.amount), cmd.user_id
        now = self._clock.now()
        hold = Hold(
            id=self._ids.new_id("hold"),
            user_id=user_id,
            request_id=request_id,
            amount=amount,
            status=HoldStatus.HELD,
            reference=cmd.reference[:200],
            created_at=now,
        )
        try:
            placed = self._place(hold, now)
        except DuplicateKey:
            # A concurrent call with the same request_id won; ours rolled back. The same step
            # now finds its hold (the account lock and the unique key make this rare).
            placed = self._place(hold, now)
        if placed.outcome is HoldOutcome.NO_ACCOUNT:
            raise errors.AccountNotFound("no billing account for this user")
        if placed.outcome is HoldOutcome.NOT_ENOUGH:
            raise errors.InsufficientCredits(
                f"{amount} credits needed", metadata={"needed": str(amount)}
            )
        assert placed.hold is not None
        return _same_hold(placed.hold, amount)

    def _place(self, hold: Hold, now: datetime) -> HoldWrite:
        # A transaction, even around one statement: what it did counts only once billing, alive,
        # commits it (a billing process killed while the hold waits for the account lock leaves
        # nothing behind; an autocommitted statement would complete and commit on its own).
        with self._uow() as uow:
            # Under the account lock a repeat sees the first call's committed hold.
            placed = uow.holds.place(hold, now)
            if placed.outcome is HoldOutcome.DONE:
                uow.commit()
        return placed


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
        # A release returns an expired grant's share as a grace grant (F6), so no credit
        # silently vanishes; its id and expiry are decided here, used only when needed.
        with self._uow() as uow:
            settled = uow.holds.settle(
                user_id,
                request_id,
                target,
                now,
                grace_id=self._ids.new_id("grant") if target is HoldStatus.RELEASED else "",
                grace_expires_at=now + self._config.grace_period,
            )
            if settled.outcome is HoldOutcome.DONE:
                uow.commit()
        if settled.hold is None:
            raise errors.HoldNotFound(f"no hold for request_id {request_id!r}")
        # A repeat of the same settle is answered with the hold; the opposite one is refused.
        return settled.hold.repeat_of_settle(target)


class CaptureHoldHandler(_SettleHold):
    target = HoldStatus.CAPTURED

    def __call__(self, cmd: CaptureHold) -> Hold:
        return self._settle(cmd.user_id, cmd.request_id)


class ReleaseHoldHandler(_SettleHold):
    target = HoldStatus.RELEASED

    def __call__(self, cmd: ReleaseHold) -> Hold:
        return self._settle(cmd.user_id, cmd.request_id)

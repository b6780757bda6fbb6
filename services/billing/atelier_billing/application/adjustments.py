"""Admin adjustments: grant credits (positive) or take them (negative), once per request_id."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from atelier_billing.application.credits import (
    NewGrant,
    balance_in,
    expire_user_grants,
    grant_credits,
    lock_account,
)
from atelier_billing.application.inputs import MAX_CREDITS, MAX_REASON, require_key
from atelier_billing.application.ports import (
    BillingUnitOfWork,
    BillingUnitOfWorkFactory,
    DuplicateKey,
)
from atelier_billing.domain import errors
from atelier_billing.domain.model import (
    Balance,
    GrantSource,
    LedgerKind,
    NewLedgerEntry,
    allocate,
)
from atelier_ports import problems
from atelier_ports.clock import Clock
from atelier_ports.ids import IdGenerator

log = logging.getLogger("atelier.billing")


@dataclass(frozen=True, slots=True)
class AdjustCredits:
    admin: bool
    user_id: str
    amount: int
    reason: str
    request_id: str
    expires_at: datetime | None = None


class AdjustCreditsHandler:
    def __init__(self, uow: BillingUnitOfWorkFactory, clock: Clock, ids: IdGenerator) -> None:
        self._uow, self._clock, self._ids = uow, clock, ids

    def __call__(self, cmd: AdjustCredits) -> Balance:
        if not cmd.admin:
            raise errors.AdminOnly("only an admin can adjust credits")
        request_id = require_key(cmd.request_id, "request_id")
        reason, amount, user_id = cmd.reason.strip(), cmd.amount, cmd.user_id
        if not reason or len(reason) > MAX_REASON:
            raise problems.InvalidArgument("a reason is required", field="reason")
        if amount == 0 or abs(amount) > MAX_CREDITS:
            raise problems.InvalidArgument(
                f"amount must be non-zero and at most {MAX_CREDITS} either way", field="amount"
            )
        now = self._clock.now()
        if amount > 0 and cmd.expires_at is not None and cmd.expires_at <= now:
            raise problems.InvalidArgument("expire_time must be in the future", field="expire_time")
        key = f"adjust:{request_id}"
        try:
            with self._uow() as uow:
                lock_account(uow, user_id)
                # Under the account lock a repeat sees the first call's committed entry; it is
                # answered from this same unit of work (#11: never a second one inside it).
                earlier = uow.ledger.by_key(key)
                if earlier is not None:
                    if (earlier.user_id, earlier.amount) != (user_id, amount):
                        raise errors.IdempotencyConflict(
                            f"request_id {request_id!r} was used for another adjustment"
                        )
                    return balance_in(uow, user_id, now)
                if amount > 0:
                    grant = NewGrant(
                        user_id=user_id,
                        source=GrantSource.ADMIN,
                        amount=amount,
                        expires_at=cmd.expires_at,
                        key=key,
                        reference="admin adjustment",
                        reason=reason,
                        kind=LedgerKind.ADJUST,
                    )
                    grant_credits(uow, self._ids, grant, now)
                else:
                    self._take(uow, user_id, -amount, reason, key, now)
                uow.commit()
        except DuplicateKey:
            pass  # the same adjustment committed concurrently: one effect
        log.info(
            "credits adjusted",
            extra={"fields": {"user": user_id, "amount": amount, "reason": reason}},
        )
        with self._uow() as uow:
            return balance_in(uow, user_id, self._clock.now())

    @staticmethod
    def _take(
        uow: BillingUnitOfWork, user_id: str, credits: int, reason: str, key: str, now: datetime
    ) -> None:
        expire_user_grants(uow, user_id, now)
        for part in allocate(uow.grants.spendable(user_id, now), credits, now):
            if not uow.grants.take(part.grant_id, part.amount):
                raise errors.InsufficientCredits("credits changed concurrently")
        after = uow.accounts.add_available(user_id, -credits)
        uow.ledger.append(
            NewLedgerEntry(
                user_id=user_id,
                kind=LedgerKind.ADJUST,
                amount=-credits,
                held_change=0,
                balance_after=after,
                reference="admin adjustment",
                reason=reason,
                idempotency_key=key,
            ),
            now,
        )

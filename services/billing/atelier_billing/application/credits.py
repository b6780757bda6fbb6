"""Steps on one open unit of work that change a user's credits, shared by several use cases.

None opens a unit of work: the calling use case owns the transaction (and has taken the
account's row lock where credits change). Each step writes its ledger entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from atelier_billing.application.ports import BillingUnitOfWork
from atelier_billing.domain import errors
from atelier_billing.domain.model import (
    Balance,
    Grant,
    GrantSource,
    LedgerKind,
    NewLedgerEntry,
)
from atelier_ports.ids import IdGenerator


def lock_account(uow: BillingUnitOfWork, user_id: str) -> None:
    if uow.accounts.lock(user_id) is None:
        raise errors.AccountNotFound("no billing account for this user")


def balance_in(uow: BillingUnitOfWork, user_id: str, now: datetime) -> Balance:
    """The balance as this unit of work sees it (no second unit of work: on SQLite that would
    wait for the first one's lock)."""
    account = uow.accounts.get(user_id)
    if account is None:
        raise errors.AccountNotFound("no billing account for this user")
    grants = tuple(
        g for g in uow.grants.for_user(user_id) if g.remaining > 0 and not g.is_expired(now)
    )
    membership = uow.memberships.get(user_id)
    quota_left = 0
    if membership is not None and membership.is_active(now):
        quota_left = sum(g.remaining for g in grants if g.source is GrantSource.MEMBERSHIP)
    return Balance(
        user_id=user_id,
        available=sum(g.remaining for g in grants),
        held=account.held,
        grants=grants,
        membership=membership,
        quota_left=quota_left,
    )


@dataclass(frozen=True, slots=True)
class NewGrant:
    user_id: str
    source: GrantSource
    amount: int
    expires_at: datetime | None
    key: str  # the idempotency key of the grant and its ledger entry
    reference: str
    reason: str = ""
    kind: LedgerKind = LedgerKind.GRANT


def grant_credits(uow: BillingUnitOfWork, ids: IdGenerator, new: NewGrant, now: datetime) -> Grant:
    grant = Grant(
        id=ids.new_id("grant"),
        user_id=new.user_id,
        source=new.source,
        amount=new.amount,
        remaining=new.amount,
        expires_at=new.expires_at,
        created_at=now,
        reference=new.reference,
    )
    uow.grants.add(grant, idempotency_key=new.key)
    after = uow.accounts.add_available(new.user_id, new.amount)
    uow.ledger.append(
        NewLedgerEntry(
            user_id=new.user_id,
            kind=new.kind,
            amount=new.amount,
            held_change=0,
            balance_after=after,
            reference=new.reference,
            reason=new.reason,
            idempotency_key=new.key,
            grant_id=grant.id,
        ),
        now,
    )
    return grant


def take_back(
    uow: BillingUnitOfWork,
    grant: Grant,
    wanted: int,
    reference: str,
    key: str,
    now: datetime,
    *,
    memo: bool = False,
) -> None:
    """Take up to ``wanted`` unspent credits back from ``grant``, in the ledger under ``key``;
    with ``memo`` a zero entry is written even when nothing was left to take."""
    take = max(0, min(grant.remaining, wanted))
    if take > 0:
        if not uow.grants.take(grant.id, take):
            return
        after = uow.accounts.add_available(grant.user_id, -take)
    elif memo:
        account = uow.accounts.get(grant.user_id)
        after = account.available if account else 0
    else:
        return
    uow.ledger.append(
        NewLedgerEntry(
            user_id=grant.user_id,
            kind=LedgerKind.ADJUST,
            amount=-take,
            held_change=0,
            balance_after=after,
            reference=reference,
            reason=f"refund: {take} unspent credits taken back",
            idempotency_key=key,
            grant_id=grant.id,
        ),
        now,
    )


def expire_user_grants(uow: BillingUnitOfWork, user_id: str, now: datetime) -> tuple[int, int]:
    """Expire the user's due grants → (how many grants, how many credits)."""
    count = total = 0
    for grant in uow.grants.due_for_expiry(now, user_id):
        expired = uow.grants.expire(grant.id, now)
        if expired <= 0:
            continue
        after = uow.accounts.add_available(user_id, -expired)
        uow.ledger.append(
            NewLedgerEntry(
                user_id=user_id,
                kind=LedgerKind.EXPIRE,
                amount=-expired,
                held_change=0,
                balance_after=after,
                reference=grant.reference or str(grant.source),
                grant_id=grant.id,
            ),
            now,
        )
        count, total = count + 1, total + expired
    return count, total


def end_membership(uow: BillingUnitOfWork, user_id: str, reference: str, now: datetime) -> None:
    """End the membership now (final, like a deleted subscription) and take back every unspent
    credit of its quota: without a membership there is no quota."""
    membership = uow.memberships.get(user_id)
    if membership is not None:
        ended = membership.ended(now)
        if ended != membership:
            uow.memberships.put(ended)
    for grant in uow.grants.for_user(user_id):
        if grant.source is GrantSource.MEMBERSHIP and grant.remaining > 0:
            take_back(uow, grant, grant.remaining, reference, f"refund:{grant.id}", now)

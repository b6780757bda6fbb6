"""Billing entities and value objects."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from atelier_billing.domain.errors import (
    HoldAlreadyCaptured,
    HoldAlreadyReleased,
    InsufficientCredits,
)
from atelier_ports import problems


class GrantSource(enum.StrEnum):
    SIGNUP_BONUS = "signup_bonus"
    PACK = "pack"
    MEMBERSHIP = "membership"
    ADMIN = "admin"
    GRACE = "grace"


class LedgerKind(enum.StrEnum):
    GRANT = "grant"
    HOLD = "hold"
    CAPTURE = "capture"
    RELEASE = "release"
    EXPIRE = "expire"
    ADJUST = "adjust"


class HoldStatus(enum.StrEnum):
    HELD = "held"
    CAPTURED = "captured"
    RELEASED = "released"


class ItemKind(enum.StrEnum):
    PACK = "pack"
    MEMBERSHIP = "membership"


class OrderStatus(enum.StrEnum):
    PENDING = "pending"
    PAID = "paid"
    FAILED = "failed"
    EXPIRED = "expired"
    REFUNDED = "refunded"


# The order status machine: pending → paid | failed | expired; paid → refunded. A payment the
# provider confirms after we gave up waiting (failed/expired) is still money received: it pays.
ORDER_TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    OrderStatus.PENDING: frozenset({OrderStatus.PAID, OrderStatus.FAILED, OrderStatus.EXPIRED}),
    OrderStatus.FAILED: frozenset({OrderStatus.PAID}),
    OrderStatus.EXPIRED: frozenset({OrderStatus.PAID}),
    OrderStatus.PAID: frozenset({OrderStatus.REFUNDED}),
    OrderStatus.REFUNDED: frozenset(),
}


def sources_of(target: OrderStatus) -> frozenset[OrderStatus]:
    """The statuses from which an order may move to ``target``."""
    return frozenset(s for s, targets in ORDER_TRANSITIONS.items() if target in targets)


def may_move(source: OrderStatus, target: OrderStatus) -> bool:
    """Whether the order status machine allows ``source`` → ``target``."""
    return target in ORDER_TRANSITIONS[source]


class MembershipStatus(enum.StrEnum):
    ACTIVE = "active"
    EXPIRED = "expired"
    CANCELED = "canceled"


@dataclass(frozen=True, slots=True)
class Account:
    user_id: str
    available: int
    held: int
    created_at: datetime
    email: str | None = None
    name: str | None = None


@dataclass(frozen=True, slots=True)
class Grant:
    id: str
    user_id: str
    source: GrantSource
    amount: int
    remaining: int
    expires_at: datetime | None
    created_at: datetime
    reference: str = ""

    def is_expired(self, now: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now


@dataclass(frozen=True, slots=True)
class Allocation:
    grant_id: str
    amount: int


@dataclass(frozen=True, slots=True)
class Hold:
    id: str
    user_id: str
    request_id: str
    amount: int
    status: HoldStatus
    reference: str
    created_at: datetime
    settled_at: datetime | None = None
    allocations: Sequence[Allocation] = ()

    def settled(self, target: HoldStatus, now: datetime) -> Hold:
        """This hold captured or released at ``now``."""
        return replace(self, status=target, settled_at=now)

    def repeat_of_settle(self, target: HoldStatus) -> Hold:
        """A settle that found the hold no longer held: a repeat of the same settle is answered
        with the hold (one effect); the other settle is refused."""
        if self.status is target:
            return self
        if self.status is HoldStatus.CAPTURED:
            raise HoldAlreadyCaptured("the hold was already captured")
        raise HoldAlreadyReleased("the hold was already released")


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    id: int
    user_id: str
    kind: LedgerKind
    amount: int  # change of the available balance
    held_change: int
    balance_after: int
    reference: str
    reason: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class NewLedgerEntry:
    user_id: str
    kind: LedgerKind
    amount: int
    held_change: int
    balance_after: int
    reference: str = ""
    reason: str = ""
    idempotency_key: str | None = None
    grant_id: str | None = None
    hold_id: str | None = None


@dataclass(frozen=True, slots=True)
class CatalogItem:
    id: str
    kind: ItemKind
    name: str
    credits: int
    prices: dict[str, int]  # currency (upper-case) → minor units
    period_days: int = 0
    validity_days: int | None = None  # packs: how long their credits last (None = forever)

    def price_in(self, currency: str) -> int | None:
        return self.prices.get(currency.upper())


@dataclass(frozen=True, slots=True)
class Catalog:
    items: tuple[CatalogItem, ...]

    def get(self, item_id: str) -> CatalogItem | None:
        return next((i for i in self.items if i.id == item_id), None)


@dataclass(frozen=True, slots=True)
class Order:
    id: str
    number: str
    user_id: str
    item_id: str
    item_kind: ItemKind
    credits: int
    period_days: int
    amount: int
    currency: str
    channel: str
    status: OrderStatus
    created_at: datetime
    expires_at: datetime
    request_id: str | None = None
    checkout_url: str | None = None
    checkout_code_url: str | None = None
    provider_reference: str | None = None
    provider_transaction_id: str | None = None
    paid_at: datetime | None = None
    failed_at: datetime | None = None
    expired_at: datetime | None = None
    refunded_at: datetime | None = None

    def may_become(self, target: OrderStatus) -> bool:
        return may_move(self.status, target)

    def credits_to_take_back(self, refunded: int | None) -> int:
        """Credits a refund of ``refunded`` minor units takes back (all of it when the amount is
        unknown): the refunded share of the credits, rounded up, never more than were bought."""
        paid = self.amount
        share = paid if refunded is None else min(refunded, paid)
        return -(-self.credits * share // max(paid, 1))


@dataclass(frozen=True, slots=True)
class Membership:
    user_id: str
    plan_id: str
    status: MembershipStatus
    period_start: datetime
    period_end: datetime
    quota_total: int
    subscription_id: str | None = None
    cancel_at_period_end: bool = False

    def is_active(self, now: datetime) -> bool:
        return self.status == MembershipStatus.ACTIVE and self.period_end > now

    def renewal_period(
        self, now: datetime, period_days: int, provider_end: datetime | None = None
    ) -> PeriodPlan:
        """The next period a renewal pays for: it starts where this one ends (or now, if it has
        lapsed) and ends where the provider says, else ``period_days`` later."""
        start = max(self.period_end, now)
        if provider_end is not None and provider_end > start:
            return PeriodPlan(start=start, end=provider_end)
        return PeriodPlan(start=start, end=start + timedelta(days=period_days))

    def renewed(self, period: PeriodPlan, quota: int) -> Membership:
        return replace(
            self,
            status=MembershipStatus.ACTIVE,
            period_start=period.start,
            period_end=period.end,
            quota_total=quota,
        )

    def ended(self, now: datetime) -> Membership:
        """Ended now and final (like a deleted subscription); an earlier end stays."""
        if self.status is MembershipStatus.CANCELED:
            return self
        return replace(self, status=MembershipStatus.CANCELED, period_end=min(self.period_end, now))

    def changed_by_provider(self, canceled: bool, cancel_at_period_end: bool) -> Membership:
        """The provider updated or deleted the subscription. Canceled is final: a late update
        never revives it."""
        if self.status is MembershipStatus.CANCELED:
            return self
        if canceled:
            return replace(self, status=MembershipStatus.CANCELED)
        return replace(self, cancel_at_period_end=cancel_at_period_end)


@dataclass(frozen=True, slots=True)
class Balance:
    user_id: str
    available: int
    held: int
    grants: tuple[Grant, ...]
    membership: Membership | None = None
    quota_left: int = 0


@dataclass(frozen=True, slots=True)
class PeriodPlan:
    start: datetime
    end: datetime


def spending_order(grants: Sequence[Grant], now: datetime) -> list[Grant]:
    """Spendable grants, soonest-expiring first; grants that never expire come last (F5)."""
    live = [g for g in grants if g.remaining > 0 and not g.is_expired(now)]
    return sorted(
        live,
        key=lambda g: (g.expires_at is None, g.expires_at or now, g.created_at, g.id),
    )


def allocate(grants: Sequence[Grant], amount: int, now: datetime) -> list[Allocation]:
    """Which grants pay for ``amount`` credits, earliest-expiring first.

    Pure planning: the repository applies each part with an atomic conditional update, so a
    concurrent change makes the transaction fail instead of overspending.
    """
    if amount <= 0:
        raise problems.InvalidArgument("amount must be positive", field="amount")
    parts: list[Allocation] = []
    left = amount
    for grant in spending_order(grants, now):
        take = min(grant.remaining, left)
        parts.append(Allocation(grant_id=grant.id, amount=take))
        left -= take
        if left == 0:
            return parts
    raise InsufficientCredits(
        f"{amount} credits needed, {amount - left} available",
        metadata={"needed": str(amount), "available": str(amount - left)},
    )


def next_membership_period(
    current: Membership | None, period_days: int, now: datetime
) -> PeriodPlan:
    """A paid period starts now, or where the still-running one ends (periods stack)."""
    start = now
    if current is not None and current.is_active(now):
        start = current.period_end
    return PeriodPlan(start=start, end=start + timedelta(days=period_days))


def membership_paid(
    current: Membership | None, order: Order, subscription_id: str | None, now: datetime
) -> Membership:
    """The membership a paid membership order gives: active for the order's next period (stacked
    on a running one), with the order's credits as quota, keeping the subscription we knew if the
    payment names none."""
    period = next_membership_period(current, order.period_days, now)
    return Membership(
        user_id=order.user_id,
        plan_id=order.item_id,
        status=MembershipStatus.ACTIVE,
        period_start=period.start,
        period_end=period.end,
        quota_total=order.credits,
        subscription_id=subscription_id or (current.subscription_id if current else None),
    )


@dataclass(frozen=True, slots=True)
class LedgerCheck:
    """What check-ledger found for one account."""

    user_id: str
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

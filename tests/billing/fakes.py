"""In-memory Fake* implementations of billing's ports, for use-case unit tests (no database).

The fake unit of work snapshots its state on enter and restores it unless committed, so
rollbacks behave like the database's. Single-threaded by design: concurrency is tested on the
real databases.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from types import TracebackType
from typing import Literal, Self

from atelier_billing.application.ports import (
    AccountRepository,
    BillingUnitOfWorkFactory,
    CustomerRepository,
    DuplicateKey,
    GrantRepository,
    HoldOutcome,
    HoldRepository,
    HoldWrite,
    LedgerLine,
    LedgerRepository,
    MembershipRepository,
    OrderRepository,
    PaymentEventRepository,
    PaymentProvider,
)
from atelier_billing.application.ports.payments import (
    Checkout,
    CheckoutRequest,
    OrderRef,
    PaymentEvent,
    PaymentState,
    PaymentStatusReport,
    RefundReceipt,
    RefundState,
)
from atelier_billing.domain.errors import InsufficientCredits
from atelier_billing.domain.model import (
    Account,
    Grant,
    GrantSource,
    Hold,
    HoldStatus,
    LedgerCheck,
    LedgerEntry,
    LedgerKind,
    Membership,
    MembershipStatus,
    NewLedgerEntry,
    Order,
    OrderStatus,
    allocate,
)
from atelier_ports.errors import InvalidNotification


@dataclass
class FakePaymentProvider:
    """A provider whose notifications are pre-parsed events keyed by the body."""

    name: str = "fake"
    currency: str = "USD"
    events: dict[bytes, PaymentEvent] = field(default_factory=dict)
    states: dict[str, PaymentStatusReport] = field(default_factory=dict)
    checkouts: list[CheckoutRequest] = field(default_factory=list)
    closed: list[str] = field(default_factory=list)  # order ids
    refunds: dict[str, tuple[str, int]] = field(default_factory=dict)  # refund_no → (order, amount)
    canceled: list[str] = field(default_factory=list)  # subscription ids
    refund_state: RefundState = RefundState.SUCCEEDED
    error: Exception | None = None  # raised by close_order and refund when set

    def create_checkout(self, request: CheckoutRequest) -> Checkout:
        self.checkouts.append(request)
        return Checkout(
            provider_reference=f"ref_{request.order_id}", url=f"https://pay/{request.order_id}"
        )

    def parse_notification(self, headers: Mapping[str, str], body: bytes) -> PaymentEvent:
        if headers.get("sig") != "ok" or body not in self.events:
            raise InvalidNotification("bad signature")
        return self.events[body]

    def query_payment(self, order: OrderRef) -> PaymentStatusReport:
        return self.states.get(order.order_id, PaymentStatusReport(state=PaymentState.PENDING))

    def ensure_customer(self, user_id: str, email: str | None, name: str | None) -> str | None:
        return None

    def update_customer(self, customer_id: str, email: str | None, name: str | None) -> None:
        return None

    def cancel_subscription(self, subscription_id: str, at_period_end: bool) -> None:
        self.canceled.append(subscription_id)

    def close_order(self, order: OrderRef) -> None:
        if self.error is not None:
            raise self.error
        self.closed.append(order.order_id)

    def refund(self, order: OrderRef, refund_no: str, amount: int, reason: str) -> RefundReceipt:
        if self.error is not None:
            raise self.error
        self.refunds.setdefault(refund_no, (order.order_id, amount))
        return RefundReceipt(refund_id=f"re_{refund_no}", state=self.refund_state)


@dataclass
class _State:
    accounts: dict[str, Account] = field(default_factory=dict)
    grants: dict[str, Grant] = field(default_factory=dict)
    grant_keys: dict[str, str] = field(default_factory=dict)
    expired_grants: set[str] = field(default_factory=set)
    holds: dict[str, Hold] = field(default_factory=dict)
    ledger: list[LedgerEntry] = field(default_factory=list)
    ledger_keys: dict[str, int] = field(default_factory=dict)  # key → entry id
    ledger_links: dict[int, tuple[str | None, str | None]] = field(default_factory=dict)
    orders: dict[str, Order] = field(default_factory=dict)
    memberships: dict[str, Membership] = field(default_factory=dict)
    events: set[tuple[str, str]] = field(default_factory=set)
    customers: dict[tuple[str, str], str] = field(default_factory=dict)


class _Accounts:
    def __init__(self, s: _State) -> None:
        self.s = s

    def create(self, user_id: str, now: datetime) -> bool:
        if user_id in self.s.accounts:
            return False
        self.s.accounts[user_id] = Account(user_id, 0, 0, now)
        return True

    def get(self, user_id: str) -> Account | None:
        return self.s.accounts.get(user_id)

    lock = get

    def add_available(self, user_id: str, amount: int) -> int:
        a = self.s.accounts[user_id]
        if a.available + amount < 0:
            raise InsufficientCredits("not enough")
        self.s.accounts[user_id] = replace(a, available=a.available + amount)
        return a.available + amount

    def user_ids(self) -> Sequence[str]:
        return sorted(self.s.accounts)

    def set_contact(self, user_id: str, email: str | None, name: str | None) -> None:
        a = self.s.accounts[user_id]
        self.s.accounts[user_id] = replace(a, email=email or a.email, name=name or a.name)


class _Grants:
    def __init__(self, s: _State) -> None:
        self.s = s

    def add(self, grant: Grant, idempotency_key: str | None) -> None:
        if idempotency_key in self.s.grant_keys:
            raise DuplicateKey(idempotency_key)
        if idempotency_key:
            self.s.grant_keys[idempotency_key] = grant.id
        self.s.grants[grant.id] = grant

    def get(self, grant_id: str) -> Grant | None:
        return self.s.grants.get(grant_id)

    def by_idempotency_key(self, key: str) -> Grant | None:
        gid = self.s.grant_keys.get(key)
        return self.s.grants.get(gid) if gid else None

    def spendable(self, user_id: str, now: datetime) -> Sequence[Grant]:
        return [g for g in self.for_user(user_id) if g.remaining > 0 and not g.is_expired(now)]

    def for_user(self, user_id: str) -> Sequence[Grant]:
        return [g for g in self.s.grants.values() if g.user_id == user_id]

    def take(self, grant_id: str, amount: int) -> bool:
        g = self.s.grants[grant_id]
        if g.remaining < amount:
            return False
        self.s.grants[grant_id] = replace(g, remaining=g.remaining - amount)
        return True

    def due_for_expiry(self, now: datetime, user_id: str | None = None) -> Sequence[Grant]:
        return [
            g
            for g in self.s.grants.values()
            if g.remaining > 0 and g.is_expired(now) and user_id in (None, g.user_id)
        ]

    def expire(self, grant_id: str, now: datetime) -> int:
        g = self.s.grants[grant_id]
        if g.remaining <= 0 or grant_id in self.s.expired_grants:
            return 0
        self.s.expired_grants.add(grant_id)
        self.s.grants[grant_id] = replace(g, remaining=0)
        return g.remaining

    def users_with_due_grants(self, now: datetime) -> Sequence[str]:
        return sorted({g.user_id for g in self.due_for_expiry(now)})


class _Holds:
    def __init__(self, s: _State) -> None:
        self.s = s

    def place(self, hold: Hold, now: datetime) -> HoldWrite:
        account = self.s.accounts.get(hold.user_id)
        if account is None:
            return HoldWrite(HoldOutcome.NO_ACCOUNT)
        existing = self._by_request(hold.user_id, hold.request_id)
        if existing is not None:
            return HoldWrite(HoldOutcome.FOUND, existing)
        grants = [g for g in self.s.grants.values() if g.user_id == hold.user_id]
        try:
            parts = allocate(grants, hold.amount, now)  # expired grants are never spent
        except InsufficientCredits:
            return HoldWrite(HoldOutcome.NOT_ENOUGH)
        for part in parts:
            g = self.s.grants[part.grant_id]
            self.s.grants[g.id] = replace(g, remaining=g.remaining - part.amount)
        after = account.available - hold.amount
        self.s.accounts[hold.user_id] = replace(
            account, available=after, held=account.held + hold.amount
        )
        placed = replace(hold, status=HoldStatus.HELD, created_at=now, allocations=tuple(parts))
        self.s.holds[hold.id] = placed
        _append(self.s, hold, LedgerKind.HOLD, -hold.amount, hold.amount, after, now)
        return HoldWrite(HoldOutcome.DONE, placed)

    def settle(
        self,
        user_id: str,
        request_id: str,
        target: HoldStatus,
        now: datetime,
        *,
        grace_id: str,
        grace_expires_at: datetime,
    ) -> HoldWrite:
        hold = self._by_request(user_id, request_id)
        if hold is None:
            return HoldWrite(HoldOutcome.NOT_FOUND)
        if hold.status is not HoldStatus.HELD:
            return HoldWrite(HoldOutcome.FOUND, hold)
        settled = hold.settled(target, now)
        self.s.holds[hold.id] = settled
        release = target is HoldStatus.RELEASED
        a = self.s.accounts[user_id]
        assert a.held >= hold.amount
        after = a.available + (hold.amount if release else 0)
        self.s.accounts[user_id] = replace(a, available=after, held=a.held - hold.amount)
        if release:
            regrant = 0
            for part in hold.allocations:
                g = self.s.grants[part.grant_id]
                if (
                    g.is_expired(now)
                    or g.id in self.s.expired_grants
                    or g.remaining + part.amount > g.amount
                ):
                    regrant += part.amount
                else:
                    self.s.grants[g.id] = replace(g, remaining=g.remaining + part.amount)
            if regrant:
                self.s.grants[grace_id] = Grant(
                    id=grace_id,
                    user_id=user_id,
                    source=GrantSource.GRACE,
                    amount=regrant,
                    remaining=regrant,
                    expires_at=grace_expires_at,
                    created_at=now,
                    reference=f"returned from {hold.reference or hold.request_id}",
                )
                self.s.grant_keys[f"grace:{hold.id}"] = grace_id
        kind = LedgerKind.RELEASE if release else LedgerKind.CAPTURE
        _append(self.s, hold, kind, hold.amount if release else 0, -hold.amount, after, now)
        return HoldWrite(HoldOutcome.DONE, settled)

    def _by_request(self, user_id: str, request_id: str) -> Hold | None:
        return next(
            (
                h
                for h in self.s.holds.values()
                if (h.user_id, h.request_id) == (user_id, request_id)
            ),
            None,
        )


def _append(
    s: _State, hold: Hold, kind: LedgerKind, amount: int, held: int, after: int, now: datetime
) -> None:
    _Ledger(s).append(
        NewLedgerEntry(
            user_id=hold.user_id,
            kind=kind,
            amount=amount,
            held_change=held,
            balance_after=after,
            reference=hold.reference,
            hold_id=hold.id,
        ),
        now,
    )


class _Ledger:
    def __init__(self, s: _State) -> None:
        self.s = s

    def append(self, entry: NewLedgerEntry, now: datetime) -> None:
        if entry.idempotency_key:
            if entry.idempotency_key in self.s.ledger_keys:
                raise DuplicateKey(entry.idempotency_key)
            self.s.ledger_keys[entry.idempotency_key] = len(self.s.ledger) + 1
        self.s.ledger_links[len(self.s.ledger) + 1] = (entry.hold_id, entry.grant_id)
        self.s.ledger.append(
            LedgerEntry(
                id=len(self.s.ledger) + 1,
                user_id=entry.user_id,
                kind=entry.kind,
                amount=entry.amount,
                held_change=entry.held_change,
                balance_after=entry.balance_after,
                reference=entry.reference,
                reason=entry.reason,
                created_at=now,
            )
        )

    def has_key(self, key: str) -> bool:
        return key in self.s.ledger_keys

    def by_key(self, key: str) -> LedgerEntry | None:
        entry_id = self.s.ledger_keys.get(key)
        return None if entry_id is None else self.s.ledger[entry_id - 1]

    def page(self, user_id: str, page_size: int, before_id: int | None) -> Sequence[LedgerEntry]:
        rows = [
            e
            for e in reversed(self.s.ledger)
            if e.user_id == user_id and (before_id is None or e.id < before_id)
        ]
        return rows[:page_size]

    def page_by_time(
        self, user_id: str, page_size: int, before: tuple[datetime, int] | None
    ) -> Sequence[LedgerLine]:
        rows = sorted(
            (e for e in self.s.ledger if e.user_id == user_id),
            key=lambda e: (e.created_at, e.id),
            reverse=True,
        )
        if before is not None:
            rows = [e for e in rows if (e.created_at, e.id) < before]
        return [self._line(e) for e in rows[:page_size]]

    def _line(self, e: LedgerEntry) -> LedgerLine:
        hold_id, grant_id = self.s.ledger_links.get(e.id, (None, None))
        hold = self.s.holds.get(hold_id) if hold_id else None
        keys = {gid: key for key, gid in self.s.grant_keys.items()}
        return LedgerLine(
            e, hold.request_id if hold else None, keys.get(grant_id) if grant_id else None
        )

    def check(self, user_id: str) -> LedgerCheck:
        a = self.s.accounts[user_id]
        entries = [e for e in self.s.ledger if e.user_id == user_id]
        found = []
        if sum(e.amount for e in entries) != a.available:
            found.append("available != ledger")
        if sum(g.remaining for g in self.s.grants.values() if g.user_id == user_id) != a.available:
            found.append("available != grants")
        if sum(e.held_change for e in entries) != a.held:
            found.append("held != ledger")
        return LedgerCheck(user_id, found)


class _Orders:
    def __init__(self, s: _State) -> None:
        self.s = s

    def add(self, order: Order) -> None:
        if order.request_id and self.by_request(order.user_id, order.request_id):
            raise DuplicateKey(order.request_id)
        if any(o.number == order.number for o in self.s.orders.values()):
            raise DuplicateKey(order.number)
        self.s.orders[order.id] = order

    def get(self, order_id: str) -> Order | None:
        return self.s.orders.get(order_id)

    def by_request(self, user_id: str, request_id: str) -> Order | None:
        return next(
            (
                o
                for o in self.s.orders.values()
                if (o.user_id, o.request_id) == (user_id, request_id)
            ),
            None,
        )

    def page(
        self, user_id: str, page_size: int, after: tuple[datetime, str] | None
    ) -> Sequence[Order]:
        rows = sorted(
            (o for o in self.s.orders.values() if o.user_id == user_id),
            key=lambda o: (o.created_at, o.id),
            reverse=True,
        )
        if after:
            rows = [o for o in rows if (o.created_at, o.id) < after]
        return rows[:page_size]

    def settled_page(
        self,
        user_id: str,
        page_size: int,
        event: Literal["paid", "refunded"],
        before: tuple[datetime, str | None] | None,
    ) -> Sequence[Order]:
        def at(o: Order) -> datetime | None:
            return o.paid_at if event == "paid" else o.refunded_at

        rows = sorted(
            ((at(o), o.id, o) for o in self.s.orders.values() if o.user_id == user_id),
            key=lambda r: (r[0] or datetime.min, r[1]),
            reverse=True,
        )
        return [
            o
            for t, oid, o in rows
            if t is not None
            and (
                before is None
                or t < before[0]
                or (t == before[0] and (before[1] is None or oid < before[1]))
            )
        ][:page_size]

    def set_checkout(
        self, order_id: str, url: str | None, code_url: str | None, provider_reference: str
    ) -> None:
        o = self.s.orders[order_id]
        self.s.orders[order_id] = replace(
            o, checkout_url=url, checkout_code_url=code_url, provider_reference=provider_reference
        )

    def transition(
        self,
        order_id: str,
        sources: frozenset[OrderStatus],
        target: OrderStatus,
        now: datetime,
        transaction_id: str | None = None,
    ) -> bool:
        o = self.s.orders[order_id]
        if o.status not in sources:
            return False
        stamp = {f"{target.value}_at": now} if target is not OrderStatus.PENDING else {}
        self.s.orders[order_id] = replace(
            o,
            status=target,
            provider_transaction_id=transaction_id or o.provider_transaction_id,
            **stamp,  # type: ignore[arg-type]
        )
        return True

    def by_transaction(self, channel: str, transaction_id: str) -> Order | None:
        return next(
            (
                o
                for o in self.s.orders.values()
                if (o.channel, o.provider_transaction_id) == (channel, transaction_id)
            ),
            None,
        )

    def pending_since(self, cutoff: datetime, limit: int) -> Sequence[Order]:
        rows = [
            o
            for o in self.s.orders.values()
            if o.status is OrderStatus.PENDING and o.created_at <= cutoff
        ]
        return sorted(rows, key=lambda o: o.created_at)[:limit]

    def due_for_expiry(self, now: datetime, limit: int) -> Sequence[Order]:
        return [
            o
            for o in self.s.orders.values()
            if o.status is OrderStatus.PENDING and o.expires_at <= now
        ][:limit]


class _Memberships:
    def __init__(self, s: _State) -> None:
        self.s = s

    def get(self, user_id: str) -> Membership | None:
        return self.s.memberships.get(user_id)

    def put(self, membership: Membership) -> None:
        self.s.memberships[membership.user_id] = membership

    def by_subscription(self, subscription_id: str) -> Membership | None:
        return next(
            (m for m in self.s.memberships.values() if m.subscription_id == subscription_id), None
        )

    def expire_due(self, now: datetime) -> int:
        n = 0
        for uid, m in list(self.s.memberships.items()):
            if m.status is MembershipStatus.ACTIVE and m.period_end <= now:
                self.s.memberships[uid] = replace(m, status=MembershipStatus.EXPIRED)
                n += 1
        return n


class _Events:
    def __init__(self, s: _State) -> None:
        self.s = s

    def seen(self, provider: str, event_id: str) -> bool:
        return (provider, event_id) in self.s.events

    def record(
        self, provider: str, event_id: str, kind: str, order_id: str | None, now: datetime
    ) -> None:
        if (provider, event_id) in self.s.events:
            raise DuplicateKey(event_id)
        self.s.events.add((provider, event_id))


class _Customers:
    def __init__(self, s: _State) -> None:
        self.s = s

    def get(self, user_id: str, provider: str) -> str | None:
        return self.s.customers.get((user_id, provider))

    def for_user(self, user_id: str) -> Mapping[str, str]:
        return {p: c for (u, p), c in self.s.customers.items() if u == user_id}

    def by_customer(self, provider: str, customer_id: str) -> str | None:
        return next(
            (u for (u, p), c in self.s.customers.items() if (p, c) == (provider, customer_id)),
            None,
        )

    def add(self, user_id: str, provider: str, customer_id: str) -> None:
        if (user_id, provider) in self.s.customers:
            raise DuplicateKey(user_id)
        self.s.customers[(user_id, provider)] = customer_id


class FakeUnitOfWork:
    """Implements ``BillingUnitOfWork`` (mypy checks it: see ``_conforms``)."""

    accounts: AccountRepository
    grants: GrantRepository
    holds: HoldRepository
    ledger: LedgerRepository
    orders: OrderRepository
    memberships: MembershipRepository
    payment_events: PaymentEventRepository
    customers: CustomerRepository

    def __init__(self, store: FakeStore) -> None:
        self._store = store

    def __enter__(self) -> Self:
        # Like SQLite's one writer: a unit of work opened inside another would wait for itself.
        if self._store.open_units:
            raise AssertionError("a unit of work was opened inside another one")
        self._store.open_units += 1
        self._snapshot = copy.deepcopy(self._store.state)
        s = self._store.state
        self.accounts = _Accounts(s)
        self.grants = _Grants(s)
        self.holds = _Holds(s)
        self.ledger = _Ledger(s)
        self.orders = _Orders(s)
        self.memberships = _Memberships(s)
        self.payment_events = _Events(s)
        self.customers = _Customers(s)
        self._committed = False
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._store.open_units -= 1
        if not self._committed:
            self._store.state.__dict__.update(self._snapshot.__dict__)

    def commit(self) -> None:
        self._committed = True
        self._store.commits += 1

    def rollback(self) -> None:
        """Undo everything since ``__enter__``; the transaction ends (``__exit__`` keeps it so)."""
        self._store.state.__dict__.update(copy.deepcopy(self._snapshot).__dict__)
        self._committed = True


class FakeStore:
    """The fake database; call it to get a unit of work."""

    def __init__(self) -> None:
        self.state = _State()
        self.commits = 0
        self.open_units = 0

    def __call__(self) -> FakeUnitOfWork:
        return FakeUnitOfWork(self)


def _conforms(
    store: FakeStore, provider: FakePaymentProvider
) -> tuple[BillingUnitOfWorkFactory, PaymentProvider]:
    return store, provider  # mypy proves the fakes match their ports

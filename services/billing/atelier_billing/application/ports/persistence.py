"""The persistence port of billing: a unit of work over repositories.

Every mutating method is an atomic statement in the database (conditional updates, inserts
guarded by unique constraints); none reads a number to write it back. ``lock_account`` takes the
account's row lock (``SELECT … FOR UPDATE``; SQLite serialises writers with BEGIN IMMEDIATE), so
all changes to one user's credits happen one transaction at a time.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

from atelier_billing.domain.model import (
    Account,
    Grant,
    Hold,
    HoldStatus,
    LedgerCheck,
    LedgerEntry,
    Membership,
    NewLedgerEntry,
    Order,
    OrderStatus,
)
from atelier_ports.unit_of_work import UnitOfWork


class DuplicateKey(Exception):
    """An insert hit a unique constraint (an idempotency key already used)."""


class HoldOutcome(enum.StrEnum):
    """What one ``place``/``settle`` call of the hold repository did."""

    DONE = "done"  # this call placed (or captured/released) the hold
    FOUND = "found"  # the hold was placed (or settled) before: returned as it is, nothing changed
    NO_ACCOUNT = "no_account"  # nothing changed
    NOT_ENOUGH = "not_enough"  # the spendable credits do not cover the amount; nothing changed
    NOT_FOUND = "not_found"  # no hold has this request_id; nothing changed


@dataclass(frozen=True, slots=True)
class HoldWrite:
    outcome: HoldOutcome
    hold: Hold | None = None  # with DONE and FOUND


class AccountRepository(Protocol):
    def create(self, user_id: str, now: datetime) -> bool:
        """Insert the account if missing; True when this call created it."""
        ...

    def get(self, user_id: str) -> Account | None: ...

    def lock(self, user_id: str) -> Account | None:
        """Row-lock the account for the rest of the transaction."""
        ...

    def add_available(self, user_id: str, amount: int) -> int:
        """available += amount (amount may be negative; the database refuses < 0).

        Returns the new available balance; raises InsufficientCredits when it would go negative.
        """
        ...

    def user_ids(self) -> Sequence[str]: ...

    def set_contact(self, user_id: str, email: str | None, name: str | None) -> None:
        """Remember the user's email/name (for provider customer records); None keeps a value."""
        ...


class GrantRepository(Protocol):
    def add(
        self,
        grant: Grant,
        idempotency_key: str | None,
    ) -> None:
        """Raises DuplicateKey when the idempotency key was used before."""
        ...

    def get(self, grant_id: str) -> Grant | None: ...

    def by_idempotency_key(self, key: str) -> Grant | None: ...

    def spendable(self, user_id: str, now: datetime) -> Sequence[Grant]: ...

    def for_user(self, user_id: str) -> Sequence[Grant]: ...

    def take(self, grant_id: str, amount: int) -> bool:
        """remaining -= amount if remaining >= amount."""
        ...

    def due_for_expiry(self, now: datetime, user_id: str | None = None) -> Sequence[Grant]: ...

    def expire(self, grant_id: str, now: datetime) -> int:
        """Zero the remaining credits of a grant; returns how many were expired (0 if none)."""
        ...

    def users_with_due_grants(self, now: datetime) -> Sequence[str]: ...


class HoldRepository(Protocol):
    """A hold, a capture and a release are each one step of the database (F6): on PostgreSQL one
    statement, one round trip. Each takes the account's row lock first."""

    def place(self, hold: Hold, now: datetime) -> HoldWrite:
        """Place ``hold`` (HELD; its ``allocations`` are ignored) for ``hold.user_id``.

        A hold already placed with the same (user_id, request_id) is answered as it is (FOUND,
        with its allocations; the caller compares the amount). Otherwise ``hold.amount`` is
        allocated across the user's spendable grants (remaining > 0 and not expired at ``now``,
        whether or not the expiry job has swept them yet), soonest-expiring first as the domain's
        ``spending_order``; the amount moves from available to held; the hold, its allocations
        and its HOLD ledger entry are written (DONE, the hold with its allocations).
        NO_ACCOUNT and NOT_ENOUGH change nothing. DuplicateKey if a concurrent transaction
        placed the same request_id first.
        """
        ...

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
        """Capture (``target`` CAPTURED) or release (RELEASED) the user's hold ``request_id``.

        A held hold is settled with its ledger entry (DONE, the hold as settled): a capture
        spends the held credits; a release returns them to available and to the grants they were
        allocated from, except the shares of grants that have expired (swept or not), which come
        back as one GRACE grant (id ``grace_id``, expiring ``grace_expires_at``, reference
        "returned from <the hold's reference or request_id>", idempotency key
        "grace:<hold id>"). A hold settled before is answered as it is (FOUND; the caller tells
        a repeat from the opposite settle); NOT_FOUND when there is no such hold.
        """
        ...


@dataclass(frozen=True, slots=True)
class LedgerLine:
    """A ledger entry with what caused it: the request id of its hold (a task id) and the
    idempotency key of its grant (``order:<id>``, ``signup:<user>``, …), where it has them."""

    entry: LedgerEntry
    hold_request_id: str | None = None
    grant_key: str | None = None


class LedgerRepository(Protocol):
    def append(self, entry: NewLedgerEntry, now: datetime) -> None:
        """DuplicateKey when the entry's idempotency key exists."""
        ...

    def has_key(self, key: str) -> bool: ...

    def by_key(self, key: str) -> LedgerEntry | None:
        """The entry written with this idempotency key, if any."""
        ...

    def page(
        self, user_id: str, page_size: int, before_id: int | None
    ) -> Sequence[LedgerEntry]: ...

    def page_by_time(
        self, user_id: str, page_size: int, before: tuple[datetime, int] | None
    ) -> Sequence[LedgerLine]:
        """The user's entries with (created_at, id) below ``before``, newest first."""
        ...

    def check(self, user_id: str) -> LedgerCheck: ...


class OrderRepository(Protocol):
    def add(self, order: Order) -> None:
        """DuplicateKey when (user_id, request_id) or the number was used."""
        ...

    def get(self, order_id: str) -> Order | None: ...

    def by_request(self, user_id: str, request_id: str) -> Order | None: ...

    def page(
        self, user_id: str, page_size: int, after: tuple[datetime, str] | None
    ) -> Sequence[Order]: ...

    def settled_page(
        self,
        user_id: str,
        page_size: int,
        event: Literal["paid", "refunded"],
        before: tuple[datetime, str | None] | None,
    ) -> Sequence[Order]:
        """The user's orders that were paid (or refunded), by (paid_at or refunded_at, id) below
        ``before`` (an id of None: every order of that instant too), newest first."""
        ...

    def set_checkout(
        self,
        order_id: str,
        url: str | None,
        code_url: str | None,
        provider_reference: str,
    ) -> None: ...

    def transition(
        self,
        order_id: str,
        sources: frozenset[OrderStatus],
        target: OrderStatus,
        now: datetime,
        transaction_id: str | None = None,
    ) -> bool: ...

    def due_for_expiry(self, now: datetime, limit: int) -> Sequence[Order]: ...

    def by_transaction(self, channel: str, transaction_id: str) -> Order | None: ...

    def pending_since(self, cutoff: datetime, limit: int) -> Sequence[Order]:
        """Pending orders created at or before ``cutoff``, oldest first."""
        ...


class MembershipRepository(Protocol):
    def get(self, user_id: str) -> Membership | None: ...

    def put(self, membership: Membership) -> None: ...

    def by_subscription(self, subscription_id: str) -> Membership | None: ...

    def expire_due(self, now: datetime) -> int: ...


class PaymentEventRepository(Protocol):
    def seen(self, provider: str, event_id: str) -> bool: ...

    def record(
        self, provider: str, event_id: str, kind: str, order_id: str | None, now: datetime
    ) -> None:
        """DuplicateKey when the event was recorded before."""
        ...


class CustomerRepository(Protocol):
    def get(self, user_id: str, provider: str) -> str | None: ...

    def for_user(self, user_id: str) -> Mapping[str, str]:
        """provider → customer id."""
        ...

    def by_customer(self, provider: str, customer_id: str) -> str | None:
        """The user id owning a provider customer."""
        ...

    def add(self, user_id: str, provider: str, customer_id: str) -> None:
        """DuplicateKey when the user already has a customer at this provider."""
        ...


class BillingUnitOfWork(UnitOfWork, Protocol):
    """One transaction: it begins on ``__enter__`` and ends on ``commit``/``rollback``/
    ``__exit__`` (rolled back if not committed); ``commit()`` does not start a new one."""

    accounts: AccountRepository
    grants: GrantRepository
    holds: HoldRepository
    ledger: LedgerRepository
    orders: OrderRepository
    memberships: MembershipRepository
    payment_events: PaymentEventRepository
    customers: CustomerRepository


class BillingUnitOfWorkFactory(Protocol):
    def __call__(self) -> BillingUnitOfWork: ...

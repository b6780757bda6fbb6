"""Billing as the gateway sees it: the data ``BillingGateway`` (ports.py) takes and returns.

Plain frozen dataclasses; enum values are the API's lower-case names (``"pending"``), so the
HTTP presenters only rename fields.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

LedgerKind = Literal["grant", "hold", "capture", "release", "expire", "adjust"]
OrderStatus = Literal["pending", "paid", "failed", "expired", "refunded"]
ItemKind = Literal["pack", "membership"]
SandboxOutcome = Literal["paid", "failed"]


@dataclass(frozen=True, slots=True)
class Membership:
    active: bool
    plan_id: str
    status: str  # active, expired or canceled
    period_end: datetime | None
    quota_total: int
    quota_left: int


@dataclass(frozen=True, slots=True)
class Grant:
    id: str
    source: str  # signup_bonus, pack, membership, admin, grace, …
    amount: int
    remaining: int
    expires_at: datetime | None
    created_at: datetime | None


@dataclass(frozen=True, slots=True)
class Balance:
    available: int
    held: int
    membership: Membership | None
    grants: Sequence[Grant]


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    id: str
    kind: LedgerKind
    amount: int
    held_change: int
    balance_after: int
    reference: str
    reason: str
    created_at: datetime | None


@dataclass(frozen=True, slots=True)
class Price:
    currency: str
    amount: int


@dataclass(frozen=True, slots=True)
class CatalogItem:
    id: str
    kind: ItemKind
    name: str
    credits: int
    period_days: int | None  # membership plans only
    prices: Sequence[Price]


@dataclass(frozen=True, slots=True)
class Catalog:
    market: str
    items: Sequence[CatalogItem]
    channels: Sequence[str]


@dataclass(frozen=True, slots=True)
class NewOrder:
    item_id: str
    channel: str


@dataclass(frozen=True, slots=True)
class Checkout:
    url: str | None
    code_url: str | None
    expires_at: datetime | None


@dataclass(frozen=True, slots=True)
class Order:
    id: str
    number: str
    status: OrderStatus
    item_id: str
    item_kind: ItemKind
    credits: int
    amount: int
    currency: str
    channel: str
    checkout: Checkout
    provider_transaction_id: str | None
    created_at: datetime | None
    paid_at: datetime | None
    failed_at: datetime | None
    expired_at: datetime | None
    refunded_at: datetime | None


ActivityKind = Literal["ledger", "payment", "refund"]


@dataclass(frozen=True, slots=True)
class Account:
    """Another user's account, as an administrator reads it."""

    balance: Balance
    recent_orders: Sequence[Order]


@dataclass(frozen=True, slots=True)
class AccountActivity:
    """One entry of a user's account activity: a ledger entry, or an order's payment or refund.

    ``cause``/``cause_id`` say what made it (``task`` and the task id, ``order`` and the order
    id, ``signup``, ``admin``; empty when unknown); ``page_token`` continues the activity listing
    right after this entry."""

    id: str
    kind: ActivityKind
    at: datetime | None
    ledger_entry: LedgerEntry | None
    order: Order | None
    cause: str
    cause_id: str
    page_token: str

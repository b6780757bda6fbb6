"""Balance, ledger, catalog and orders: the response models and their presenters."""

from __future__ import annotations

from pydantic import Field

from atelier_gateway.application import billing_views as dto
from atelier_gateway.application.billing_views import ItemKind, LedgerKind, OrderStatus
from atelier_gateway.application.calls import Page
from atelier_gateway.entrypoints.http.contract import ResponseModel, Timestamp
from atelier_gateway.entrypoints.http.presenters import rfc3339


class Membership(ResponseModel):
    active: bool
    plan_id: str
    status: str = Field(description="active, expired or canceled")
    period_end: Timestamp | None
    quota_total: int
    quota_left: int


class Grant(ResponseModel):
    id: str
    source: str = Field(description="signup_bonus, pack, membership, admin, grace, …")
    amount: int
    remaining: int
    expires_at: Timestamp | None
    created_at: Timestamp | None


class Balance(ResponseModel):
    available: int
    held: int
    membership: Membership | None
    grants: list[Grant]


class LedgerEntry(ResponseModel):
    id: str
    kind: LedgerKind
    amount: int
    held_change: int
    balance_after: int
    reference: str
    reason: str
    created_at: Timestamp | None


class LedgerPage(ResponseModel):
    items: list[LedgerEntry]
    next_page_token: str


class Price(ResponseModel):
    currency: str
    amount: int


class CatalogItem(ResponseModel):
    id: str
    kind: ItemKind
    name: str
    credits: int
    period_days: int | None = Field(description="Membership plans only")
    prices: list[Price]


class Catalog(ResponseModel):
    market: str
    items: list[CatalogItem]
    channels: list[str]


class Checkout(ResponseModel):
    url: str | None
    code_url: str | None
    expires_at: Timestamp | None


class Order(ResponseModel):
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
    created_at: Timestamp | None
    paid_at: Timestamp | None
    failed_at: Timestamp | None
    expired_at: Timestamp | None
    refunded_at: Timestamp | None


class OrderPage(ResponseModel):
    items: list[Order]
    next_page_token: str


def balance(b: dto.Balance) -> Balance:
    m = b.membership
    return Balance(
        available=b.available,
        held=b.held,
        membership=None
        if m is None
        else Membership(
            active=m.active,
            plan_id=m.plan_id,
            status=m.status,
            period_end=rfc3339(m.period_end),
            quota_total=m.quota_total,
            quota_left=m.quota_left,
        ),
        grants=[
            Grant(
                id=g.id,
                source=g.source,
                amount=g.amount,
                remaining=g.remaining,
                expires_at=rfc3339(g.expires_at),
                created_at=rfc3339(g.created_at),
            )
            for g in b.grants
        ],
    )


def ledger_entry(e: dto.LedgerEntry) -> LedgerEntry:
    return LedgerEntry(
        id=e.id,
        kind=e.kind,
        amount=e.amount,
        held_change=e.held_change,
        balance_after=e.balance_after,
        reference=e.reference,
        reason=e.reason,
        created_at=rfc3339(e.created_at),
    )


def ledger_page(page: Page[dto.LedgerEntry]) -> LedgerPage:
    return LedgerPage(
        items=[ledger_entry(e) for e in page.items], next_page_token=page.next_page_token
    )


def catalog(c: dto.Catalog) -> Catalog:
    return Catalog(
        market=c.market,
        items=[
            CatalogItem(
                id=item.id,
                kind=item.kind,
                name=item.name,
                credits=item.credits,
                period_days=item.period_days,
                prices=[Price(currency=p.currency, amount=p.amount) for p in item.prices],
            )
            for item in c.items
        ],
        channels=list(c.channels),
    )


def order(o: dto.Order) -> Order:
    return Order(
        id=o.id,
        number=o.number,
        status=o.status,
        item_id=o.item_id,
        item_kind=o.item_kind,
        credits=o.credits,
        amount=o.amount,
        currency=o.currency,
        channel=o.channel,
        checkout=Checkout(
            url=o.checkout.url,
            code_url=o.checkout.code_url,
            expires_at=rfc3339(o.checkout.expires_at),
        ),
        provider_transaction_id=o.provider_transaction_id,
        created_at=rfc3339(o.created_at),
        paid_at=rfc3339(o.paid_at),
        failed_at=rfc3339(o.failed_at),
        expired_at=rfc3339(o.expired_at),
        refunded_at=rfc3339(o.refunded_at),
    )


def order_page(page: Page[dto.Order]) -> OrderPage:
    return OrderPage(items=[order(o) for o in page.items], next_page_token=page.next_page_token)

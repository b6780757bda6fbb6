"""Balance, ledger, catalog and orders (F8-F12), proxied to billing over gRPC."""

from __future__ import annotations

import re
from typing import Any, Literal

from aiohttp import web
from pydantic import ConfigDict, Field

from atelier_gateway.adapters.grpc_clients import Caller
from atelier_gateway.entrypoints.http.context import authenticate, container, optional_caller
from atelier_gateway.entrypoints.http.contract import (
    Operation,
    PageQuery,
    RequestModel,
    ResponseModel,
    Timestamp,
    body_model,
    operation,
    query_model,
    respond,
)
from atelier_gateway.entrypoints.http.idempotent import IDEMPOTENCY_HEADER, run_idempotent
from atelier_gateway.entrypoints.http.jsonio import read_body
from atelier_gateway.entrypoints.http.presenters import enum_name, ts
from atelier_gateway.entrypoints.http.problems import Problem

routes = web.RouteTableDef()
_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")

LedgerKind = Literal["grant", "hold", "capture", "release", "expire", "adjust"]
OrderStatus = Literal["pending", "paid", "failed", "expired", "refunded"]
ItemKind = Literal["pack", "membership"]


def _pb() -> Any:
    from atelier.billing.v1 import billing_pb2

    return billing_pb2


def path_id(request: web.Request, name: str) -> str:
    value = request.match_info[name]
    if not _ID.match(value):
        # Not an id we could ever have issued: the same answer as someone else's id.
        raise Problem(404, "not_found", "Not found", f"no such {name.removesuffix('_id')}")
    return value


# --- models ------------------------------------------------------------------------------------


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


class CreateOrderRequest(RequestModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"item_id": "pack_100", "channel": "local"}]}
    )

    item_id: str = Field(min_length=1, max_length=128)
    channel: str = Field(min_length=1, max_length=64)


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


def balance(b: Any) -> Balance:
    pb = _pb()
    membership = None
    if b.HasField("membership"):
        m = b.membership
        membership = Membership(
            active=m.active,
            plan_id=m.plan_id,
            status=enum_name(m.status, pb.MembershipStatus, "MEMBERSHIP_STATUS_"),
            period_end=ts(m, "period_end_time"),
            quota_total=m.quota_total,
            quota_left=m.quota_left,
        )
    return Balance(
        available=b.available,
        held=b.held,
        membership=membership,
        grants=[
            Grant(
                id=g.id,
                source=enum_name(g.source, pb.GrantSource, "GRANT_SOURCE_"),
                amount=g.amount,
                remaining=g.remaining,
                expires_at=ts(g, "expire_time"),
                created_at=ts(g, "create_time"),
            )
            for g in b.grants
        ],
    )


def ledger_entry(e: Any) -> LedgerEntry:
    return LedgerEntry(
        id=e.id,
        kind=enum_name(e.kind, _pb().LedgerEntryKind, "LEDGER_ENTRY_KIND_"),  # type: ignore[arg-type]
        amount=e.amount,
        held_change=e.held_change,
        balance_after=e.balance_after,
        reference=e.reference,
        reason=e.reason,
        created_at=ts(e, "create_time"),
    )


def catalog(reply: Any) -> Catalog:
    pb = _pb()
    return Catalog(
        market=reply.market,
        items=[
            CatalogItem(
                id=item.id,
                kind=enum_name(item.kind, pb.CatalogItemKind, "CATALOG_ITEM_KIND_"),  # type: ignore[arg-type]
                name=item.name,
                credits=item.credits,
                period_days=(
                    item.period_days if item.kind == pb.CATALOG_ITEM_KIND_MEMBERSHIP else None
                ),
                prices=[Price(currency=p.currency, amount=p.amount) for p in item.prices],
            )
            for item in reply.items
        ],
        channels=list(reply.channels),
    )


def order(o: Any) -> Order:
    pb = _pb()
    return Order(
        id=o.id,
        number=o.number,
        status=enum_name(o.status, pb.OrderStatus, "ORDER_STATUS_"),  # type: ignore[arg-type]
        item_id=o.item_id,
        item_kind=enum_name(o.item_kind, pb.CatalogItemKind, "CATALOG_ITEM_KIND_"),  # type: ignore[arg-type]
        credits=o.credits,
        amount=o.amount,
        currency=o.currency,
        channel=o.channel,
        checkout=Checkout(
            url=o.checkout.url or None,
            code_url=o.checkout.code_url or None,
            expires_at=ts(o.checkout, "expire_time"),
        ),
        provider_transaction_id=o.provider_transaction_id or None,
        created_at=ts(o, "create_time"),
        paid_at=ts(o, "paid_time"),
        failed_at=ts(o, "failed_time"),
        expired_at=ts(o, "expired_time"),
        refunded_at=ts(o, "refunded_time"),
    )


# --- routes ------------------------------------------------------------------------------------


@operation(
    routes,
    "GET",
    "/v1/me/balance",
    Operation("Credit balance, grants and membership", response=Balance),
)
async def get_balance(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    reply = await container(request).billing.call("GetBalance", _pb().GetBalanceRequest(), caller)
    return respond(balance(reply.balance))


@operation(
    routes,
    "GET",
    "/v1/me/ledger",
    Operation("Ledger entries, newest first", response=LedgerPage, query=PageQuery),
)
async def get_ledger(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    q = query_model(request, PageQuery)
    reply = await container(request).billing.call(
        "ListLedgerEntries",
        _pb().ListLedgerEntriesRequest(page_size=q.page_size, page_token=q.page_token),
        caller,
    )
    return respond(
        LedgerPage(
            items=[ledger_entry(e) for e in reply.entries],
            next_page_token=reply.next_page_token,
        )
    )


@operation(
    routes,
    "GET",
    "/v1/catalog",
    Operation(
        "Credit packs, membership plans and payment channels", response=Catalog, auth="optional"
    ),
)
async def get_catalog(request: web.Request) -> web.Response:
    caller = await optional_caller(request) or Caller(user_id=None)
    reply = await container(request).billing.call("GetCatalog", _pb().GetCatalogRequest(), caller)
    return respond(catalog(reply))


@operation(
    routes,
    "POST",
    "/v1/orders",
    Operation(
        "Create an order (Idempotency-Key supported)",
        status=201,
        body=CreateOrderRequest,
        response=Order,
        headers=(IDEMPOTENCY_HEADER,),
        errors=(409,),
    ),
)
async def create_order(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    raw = await read_body(request)
    body = body_model(CreateOrderRequest, raw, request)

    async def produce(request_id: str | None) -> web.Response:
        reply = await container(request).billing.call(
            "CreateOrder",
            _pb().CreateOrderRequest(
                item_id=body.item_id, channel=body.channel, request_id=request_id or ""
            ),
            caller,
        )
        return respond(order(reply.order), status=201)

    return await run_idempotent(request, caller, "POST /v1/orders", raw, produce)


@operation(
    routes,
    "GET",
    "/v1/orders",
    Operation("Your orders, newest first", response=OrderPage, query=PageQuery),
)
async def list_orders(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    q = query_model(request, PageQuery)
    reply = await container(request).billing.call(
        "ListOrders",
        _pb().ListOrdersRequest(page_size=q.page_size, page_token=q.page_token),
        caller,
    )
    return respond(
        OrderPage(items=[order(o) for o in reply.orders], next_page_token=reply.next_page_token)
    )


@operation(routes, "GET", "/v1/orders/{order_id}", Operation("One order", response=Order))
async def get_order(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    order_id = path_id(request, "order_id")
    reply = await container(request).billing.call(
        "GetOrder", _pb().GetOrderRequest(order_id=order_id), caller
    )
    return respond(order(reply.order))


@operation(
    routes,
    "POST",
    "/v1/orders/{order_id}/refresh",
    Operation("Ask the provider about the payment (the 'I have paid' button)", response=Order),
)
async def refresh_order(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    order_id = path_id(request, "order_id")
    reply = await container(request).billing.call(
        "RefreshOrder", _pb().RefreshOrderRequest(order_id=order_id), caller, timeout=15.0
    )
    return respond(order(reply.order))

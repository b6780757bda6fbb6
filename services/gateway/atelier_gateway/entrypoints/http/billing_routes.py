"""Balance, ledger, catalog and orders (F8-F12), an order's WeChat QR code, and the admin's refund
(F15): billing through the ``BillingGateway`` port."""

from __future__ import annotations

from aiohttp import web
from pydantic import ConfigDict, Field

from atelier_gateway.application.billing_views import NewOrder
from atelier_gateway.application.calls import Caller, PageRequest
from atelier_gateway.entrypoints.http.context import (
    authenticate,
    container,
    optional_caller,
    require_admin,
)
from atelier_gateway.entrypoints.http.contract import (
    Operation,
    PageQuery,
    RequestModel,
    body_model,
    operation,
    path_id,
    query_model,
    respond,
)
from atelier_gateway.entrypoints.http.idempotent import IDEMPOTENCY_HEADER, run_idempotent
from atelier_gateway.entrypoints.http.jsonio import read_body
from atelier_gateway.entrypoints.http.presenters import billing as present
from atelier_gateway.entrypoints.http.presenters.billing import (
    Balance,
    Catalog,
    LedgerPage,
    Order,
    OrderPage,
)
from atelier_gateway.entrypoints.http.problems import Problem
from atelier_gateway.entrypoints.http.qr import qr_svg

routes = web.RouteTableDef()


class RefundOrderRequest(RequestModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"reason": "charged twice"}]})

    reason: str = Field(default="", max_length=500)


class CreateOrderRequest(RequestModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"item_id": "pack_100", "channel": "local"}]}
    )

    item_id: str = Field(min_length=1, max_length=128)
    channel: str = Field(min_length=1, max_length=64)


@operation(
    routes,
    "GET",
    "/v1/me/balance",
    Operation("Credit balance, grants and membership", response=Balance),
)
async def get_balance(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    balance = await container(request).billing.get_balance(caller)
    return respond(present.balance(balance))


@operation(
    routes,
    "GET",
    "/v1/me/ledger",
    Operation("Ledger entries, newest first", response=LedgerPage, query=PageQuery),
)
async def get_ledger(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    q = query_model(request, PageQuery)
    page = await container(request).billing.list_ledger(
        caller, PageRequest(q.page_size, q.page_token)
    )
    return respond(present.ledger_page(page))


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
    catalog = await container(request).billing.get_catalog(caller)
    return respond(present.catalog(catalog))


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
    new_order = NewOrder(item_id=body.item_id, channel=body.channel)

    async def produce(request_id: str | None) -> web.Response:
        order = await container(request).billing.create_order(caller, new_order, request_id)
        return respond(present.order(order), status=201)

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
    page = await container(request).billing.list_orders(
        caller, PageRequest(q.page_size, q.page_token)
    )
    return respond(present.order_page(page))


@operation(routes, "GET", "/v1/orders/{order_id}", Operation("One order", response=Order))
async def get_order(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    order = await container(request).billing.get_order(caller, path_id(request, "order_id"))
    return respond(present.order(order))


@operation(
    routes,
    "POST",
    "/v1/orders/{order_id}/refresh",
    Operation("Ask the provider about the payment (the 'I have paid' button)", response=Order),
)
async def refresh_order(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    order = await container(request).billing.refresh_order(caller, path_id(request, "order_id"))
    return respond(present.order(order))


@operation(
    routes,
    "GET",
    "/v1/orders/{order_id}/qr.svg",
    Operation(
        "The QR code of a WeChat order's code_url, as SVG (404 for other channels)",
        media_type="image/svg+xml",
    ),
)
async def order_qr(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    order = await container(request).billing.get_order(caller, path_id(request, "order_id"))
    if order.channel != "wechatpay" or not order.checkout.code_url:
        raise Problem(404, "not_found", "Not found", "this order has no QR code")
    return web.Response(
        body=qr_svg(order.checkout.code_url),
        content_type="image/svg+xml",
        headers={"Cache-Control": "private, no-store"},
    )


@operation(
    routes,
    "POST",
    "/v1/admin/orders/{order_id}/refund",
    Operation(
        "Admin: refund a paid order through its provider; claws back the unspent credits and "
        "ends a refunded membership (repeating it refunds once)",
        body=RefundOrderRequest,
        response=Order,
        auth="admin",
        errors=(409,),
    ),
)
async def admin_refund_order(request: web.Request) -> web.Response:
    caller = await require_admin(request)
    order_id = path_id(request, "order_id")
    raw = await read_body(request)
    body = body_model(RefundOrderRequest, raw, request) if raw.strip() else RefundOrderRequest()
    order = await container(request).billing.refund_order(caller, order_id, body.reason)
    return respond(present.order(order))

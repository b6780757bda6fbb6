"""Balance, ledger, catalog and orders (F8-F12), proxied to billing over gRPC."""

from __future__ import annotations

import re

from aiohttp import web

from atelier_gateway.entrypoints.http import presenters
from atelier_gateway.entrypoints.http.context import authenticate, container, optional_caller
from atelier_gateway.entrypoints.http.idempotent import run_idempotent
from atelier_gateway.entrypoints.http.jsonio import (
    json_response,
    page_params,
    parse_json_object,
    read_body,
    reject_unknown,
    req_str,
)
from atelier_gateway.entrypoints.http.problems import Problem

routes = web.RouteTableDef()
_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")


def _pb() -> object:
    from atelier.billing.v1 import billing_pb2

    return billing_pb2


def path_id(request: web.Request, name: str) -> str:
    value = request.match_info[name]
    if not _ID.match(value):
        # Not an id we could ever have issued: the same answer as someone else's id.
        raise Problem(404, "not_found", "Not found", f"no such {name.removesuffix('_id')}")
    return value


@routes.get("/v1/me/balance")
async def get_balance(request: web.Request) -> web.Response:
    from atelier.billing.v1 import billing_pb2

    caller = await authenticate(request)
    reply = await container(request).billing.call(
        "GetBalance", billing_pb2.GetBalanceRequest(), caller
    )
    return json_response(presenters.balance(reply.balance))


@routes.get("/v1/me/ledger")
async def get_ledger(request: web.Request) -> web.Response:
    from atelier.billing.v1 import billing_pb2

    caller = await authenticate(request)
    size, token = page_params(request)
    reply = await container(request).billing.call(
        "ListLedgerEntries",
        billing_pb2.ListLedgerEntriesRequest(page_size=size, page_token=token),
        caller,
    )
    return json_response(
        {
            "items": [presenters.ledger_entry(e) for e in reply.entries],
            "next_page_token": reply.next_page_token,
        }
    )


@routes.get("/v1/catalog")
async def get_catalog(request: web.Request) -> web.Response:
    from atelier.billing.v1 import billing_pb2
    from atelier_gateway.adapters.grpc_clients import Caller

    caller = await optional_caller(request) or Caller(user_id=None)
    reply = await container(request).billing.call(
        "GetCatalog", billing_pb2.GetCatalogRequest(), caller
    )
    return json_response(presenters.catalog(reply))


@routes.post("/v1/orders")
async def create_order(request: web.Request) -> web.Response:
    from atelier.billing.v1 import billing_pb2

    caller = await authenticate(request)
    raw = await read_body(request)
    data = parse_json_object(request, raw)
    reject_unknown(data, {"item_id", "channel"})
    item_id = req_str(data, "item_id", max_len=128)
    channel = req_str(data, "channel", max_len=64)

    async def produce(request_id: str | None) -> web.Response:
        reply = await container(request).billing.call(
            "CreateOrder",
            billing_pb2.CreateOrderRequest(
                item_id=item_id, channel=channel, request_id=request_id or ""
            ),
            caller,
        )
        return json_response(presenters.order(reply.order), status=201)

    return await run_idempotent(request, caller, "POST /v1/orders", raw, produce)


@routes.get("/v1/orders")
async def list_orders(request: web.Request) -> web.Response:
    from atelier.billing.v1 import billing_pb2

    caller = await authenticate(request)
    size, token = page_params(request)
    reply = await container(request).billing.call(
        "ListOrders", billing_pb2.ListOrdersRequest(page_size=size, page_token=token), caller
    )
    return json_response(
        {
            "items": [presenters.order(o) for o in reply.orders],
            "next_page_token": reply.next_page_token,
        }
    )


@routes.get("/v1/orders/{order_id}")
async def get_order(request: web.Request) -> web.Response:
    from atelier.billing.v1 import billing_pb2

    caller = await authenticate(request)
    order_id = path_id(request, "order_id")
    reply = await container(request).billing.call(
        "GetOrder", billing_pb2.GetOrderRequest(order_id=order_id), caller
    )
    return json_response(presenters.order(reply.order))


@routes.post("/v1/orders/{order_id}/refresh")
async def refresh_order(request: web.Request) -> web.Response:
    from atelier.billing.v1 import billing_pb2

    caller = await authenticate(request)
    order_id = path_id(request, "order_id")
    reply = await container(request).billing.call(
        "RefreshOrder", billing_pb2.RefreshOrderRequest(order_id=order_id), caller, timeout=15.0
    )
    return json_response(presenters.order(reply.order))

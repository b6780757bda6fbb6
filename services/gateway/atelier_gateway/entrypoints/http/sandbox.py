"""HTML pages: the landing page, the local market's sandbox checkout (the "Pay" and "Fail"
buttons) and the order page it returns to."""

from __future__ import annotations

import html

from aiohttp import web

from atelier_gateway.adapters.grpc_clients import Caller
from atelier_gateway.entrypoints.http.billing_routes import path_id
from atelier_gateway.entrypoints.http.context import container, request_id
from atelier_gateway.entrypoints.http.jsonio import read_body
from atelier_gateway.entrypoints.http.problems import Problem

routes = web.RouteTableDef()

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto}}
button{{font-size:1.1rem;padding:.5rem 1.5rem;margin-right:1rem}}</style></head>
<body><h1>{title}</h1>{content}</body></html>
"""


def _page(title: str, content: str, status: int = 200) -> web.Response:
    return web.Response(
        status=status,
        text=_PAGE.format(title=html.escape(title), content=content),
        content_type="text/html",
        headers={"Cache-Control": "no-store", "X-Frame-Options": "DENY"},
    )


@routes.get("/")
async def index(request: web.Request) -> web.Response:
    content = (
        "<p>The Atelier API is running.</p><ul>"
        '<li><a href="/v1/openapi.json">OpenAPI document</a> (every endpoint)</li>'
        '<li><a href="/readyz">Readiness</a> and <a href="/metrics">metrics</a></li>'
        "</ul><p>Start with <code>POST /v1/auth/signup</code>; the README walks through a "
        "purchase and a generation with curl.</p>"
    )
    return _page("Atelier", content)


@routes.get("/sandbox/checkout/{order_id}")
async def checkout_page(request: web.Request) -> web.Response:
    order_id = html.escape(path_id(request, "order_id"))
    content = (
        f"<p>Atelier sandbox payment for order <code>{order_id}</code>.</p>"
        "<p>No money moves: the local payment provider will send a signed notification to "
        "this gateway, exactly as a real provider would.</p>"
        f'<form method="post" action="/sandbox/checkout/{order_id}">'
        '<button name="outcome" value="paid">Pay</button>'
        '<button name="outcome" value="failed">Fail</button></form>'
    )
    return _page("Sandbox checkout", content)


@routes.post("/sandbox/checkout/{order_id}")
async def complete_checkout(request: web.Request) -> web.StreamResponse:
    from atelier.billing.v1 import billing_pb2

    order_id = path_id(request, "order_id")
    await read_body(request)
    form = await request.post()
    outcome = form.get("outcome")
    outcomes = {
        "paid": billing_pb2.SANDBOX_OUTCOME_PAID,
        "failed": billing_pb2.SANDBOX_OUTCOME_FAILED,
    }
    if not isinstance(outcome, str) or outcome not in outcomes:
        raise Problem(
            422,
            "validation_error",
            "Invalid request",
            "outcome must be paid or failed",
            field="outcome",
        )
    caller = Caller(user_id=None, role="user", request_id=request_id(request))
    await container(request).billing.call(
        "CompleteSandboxCheckout",
        billing_pb2.CompleteSandboxCheckoutRequest(order_id=order_id, outcome=outcomes[outcome]),
        caller,
        timeout=15.0,
    )
    raise web.HTTPSeeOther(location=f"/orders/{order_id}?outcome={outcome}")


@routes.get("/orders/{order_id}")
async def order_page(request: web.Request) -> web.Response:
    order_id = html.escape(path_id(request, "order_id"))
    outcome = request.query.get("outcome", "")
    said = {"paid": "Payment received.", "failed": "Payment failed."}.get(outcome, "")
    content = (
        f"<p>Order <code>{order_id}</code>. {html.escape(said)}</p>"
        f"<p>Its current state: <code>GET /v1/orders/{order_id}</code>.</p>"
        '<p><a href="/">Back to Atelier</a></p>'
    )
    return _page("Your order", content)

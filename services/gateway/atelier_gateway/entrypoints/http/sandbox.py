"""HTML pages: the local market's sandbox checkout (the "Pay" and "Fail"
buttons) and the order page it returns to.

The sandbox pages open only with the token of the checkout URL that billing's local payment
provider made for the order (``?token=<expiry>.<base64url(user id)>.<HMAC>``, see
``atelier_billing/adapters/payments/local.py``). The gateway does not hold the signing secret:
it reads the user from the token, asks billing for that user's order (``GetOrder``: an unknown
order or someone else's is not found) and accepts the token only if it is exactly the one in the
checkout URL billing stored with the order, and only until the order's checkout expires. Every
failure is the same 404 page, so a page never tells whether an order exists.

Every page is escaped text (no user-supplied string is written raw), has no script, and is sent
with headers that forbid framing, inline script and the referrer (the token is in the URL).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import html
import re
from urllib.parse import parse_qs, quote, urlsplit

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from atelier_common.grpc_client import RemoteCallError

from atelier_gateway.application.billing_views import Order, SandboxOutcome
from atelier_gateway.application.calls import Caller
from atelier_gateway.entrypoints.http.context import container, request_id
from atelier_gateway.entrypoints.http.problems import Problem

routes = web.RouteTableDef()

TOKEN_PARAM = "token"
# The ids billing and the gateway issue (``ord_…``, ``usr_…``); anything else is never an order.
_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
_TOKEN = re.compile(r"^([0-9]{1,12})\.([A-Za-z0-9_-]{1,200})\.([0-9a-f]{64})$")
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")

_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:36rem;margin:3rem auto;padding:0 1rem}"
    "button{font-size:1.1rem;padding:.5rem 1.5rem;margin-right:1rem}"
)
_STYLE_HASH = base64.b64encode(hashlib.sha256(_STYLE.encode()).digest()).decode()
# No script at all, the one stylesheet above by its hash, forms only back to this gateway.
CONTENT_SECURITY_POLICY = (
    f"default-src 'none'; style-src 'sha256-{_STYLE_HASH}'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
_REDIRECT_HEADERS = {"Referrer-Policy": "no-referrer", "Cache-Control": "no-store"}

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="referrer" content="no-referrer">
<style>{style}</style></head>
<body><h1>{title}</h1>{content}</body></html>
"""

_NOT_FOUND = (
    "<p>This link is not valid, or it has expired.</p>"
    "<p>A checkout link works only as it was given when the order was placed, and only until the "
    "order expires. Your orders and their state are always in your account "
    "(<code>GET /v1/orders</code>).</p>"
    '<p><a href="/">Atelier</a></p>'
)

_STATUS_TEXT = {
    "pending": "Waiting for the payment.",
    "paid": "Payment received. The credits are in your account.",
    "failed": "The payment failed. Nothing was charged.",
    "expired": "This order expired before it was paid.",
    "refunded": "This order was refunded.",
}

_PROVIDER_RETURN = {
    "success": "Thank you. Your order is marked paid as soon as the payment provider confirms it.",
    "cancel": "The checkout was cancelled. Nothing was charged.",
}
_ORDERS_HINT = '<p><a href="/#/orders">Your orders and their state</a> (in Atelier).</p>'

# ISO 4217 currencies without minor units; every other one is shown with two decimals.
_ZERO_DECIMAL = frozenset({"JPY", "KRW", "VND", "CLP", "ISK", "UGX", "XAF", "XOF"})


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _page(title: str, content: str, status: int = 200) -> web.Response:
    return web.Response(
        status=status,
        text=_PAGE.format(title=_e(title), style=_STYLE, content=content),
        content_type="text/html",
        headers=SECURITY_HEADERS,
    )


def _not_found() -> web.Response:
    """The one answer for an unknown order and a missing, forged or expired token."""
    return _page("Not found", _NOT_FOUND, status=404)


def _bad_form(detail: str) -> web.Response:
    return _page("Bad request", f"<p>{_e(detail)}</p>", status=400)


def _amount(amount: int, currency: str) -> str:
    if currency.upper() in _ZERO_DECIMAL:
        return f"{amount} {currency}"
    return f"{amount // 100}.{amount % 100:02d} {currency}"


def _with_token(path: str, token: str) -> str:
    return f"{path}?{TOKEN_PARAM}={quote(token, safe='')}"


def _user_of(token: str) -> str | None:
    match = _TOKEN.match(token)
    if match is None:
        return None
    encoded = match.group(2)
    try:
        user_id = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
    except (binascii.Error, ValueError):
        return None
    return user_id if _ID.match(user_id) else None


async def _order_for(request: web.Request, order_id: str) -> tuple[Order, str] | None:
    """The order and its token, when the request carries the order's valid checkout token."""
    token = request.query.get(TOKEN_PARAM, "")
    user_id = _user_of(token)
    if user_id is None or not _ID.match(order_id):
        return None
    caller = Caller(user_id=user_id, role="user", request_id=request_id(request))
    try:
        order = await container(request).billing.get_order(caller, order_id)
    except RemoteCallError as e:
        if e.status == "NOT_FOUND":
            return None  # unknown, or not this user's: the same answer
        raise
    stored = parse_qs(urlsplit(order.checkout.url or "").query).get(TOKEN_PARAM, [""])[0]
    if not stored or not hmac.compare_digest(stored.encode(), token.encode()):
        return None
    expires = order.checkout.expires_at
    if expires is None or container(request).clock.now() >= expires:
        return None
    return order, token


@routes.get("/sandbox/checkout/{order_id}")
async def checkout_page(request: web.Request) -> web.Response:
    order_id = request.match_info["order_id"]
    found = await _order_for(request, order_id)
    if found is None:
        return _not_found()
    order, token = found
    status = order.status
    summary = (
        f"<p>Order <code>{_e(order.number)}</code>: <code>{_e(order.item_id)}</code>, "
        f"{_e(_amount(order.amount, order.currency))}.</p>"
    )
    order_page = _e(_with_token(f"/orders/{order_id}", token))
    if status != "pending":
        content = (
            f"{summary}<p>{_e(_STATUS_TEXT.get(status, status))}</p>"
            f'<p><a href="{order_page}">Your order</a></p>'
        )
        return _page("Sandbox checkout", content)
    action = _e(_with_token(f"/sandbox/checkout/{order_id}", token))
    content = (
        f"{summary}<p>Atelier sandbox payment. No money moves: the local payment provider "
        "will send a signed notification to this gateway, exactly as a real provider would.</p>"
        f'<form method="post" action="{action}">'
        '<button name="outcome" value="paid">Pay</button>'
        '<button name="outcome" value="failed">Fail</button></form>'
        f'<p><a href="/#/orders/{_e(order_id)}">Back to Atelier without paying</a></p>'
    )
    return _page("Sandbox checkout", content)


_OUTCOMES: dict[str, SandboxOutcome] = {"paid": "paid", "failed": "failed"}


async def _read_outcome(request: web.Request) -> SandboxOutcome | web.Response:
    """The form's ``outcome``, or the 400 page for a body that is not a readable form."""
    if request.content_type not in _FORM_TYPES:
        return _bad_form("Send the checkout form (application/x-www-form-urlencoded).")
    try:
        # Not after request.read(): a multipart form is read from the stream, once. post()
        # keeps the body size limit itself (413 through the error middleware).
        form = await request.post()
    except (ValueError, LookupError, RuntimeError, HttpProcessingError):
        # Seen when fuzzing aiohttp's parser: multipart without a boundary or with a broken part
        # (ValueError, InvalidHeader), an unknown charset (LookupError) or transfer encoding.
        return _bad_form("The checkout form could not be read.")
    value = form.get("outcome")
    outcome = _OUTCOMES.get(value) if isinstance(value, str) else None
    if outcome is None:
        raise Problem(
            422,
            "validation_error",
            "Invalid request",
            "outcome must be paid or failed",
            field="outcome",
        )
    return outcome


@routes.post("/sandbox/checkout/{order_id}")
async def complete_checkout(request: web.Request) -> web.StreamResponse:
    outcome = await _read_outcome(request)
    if isinstance(outcome, web.Response):
        return outcome
    order_id = request.match_info["order_id"]
    found = await _order_for(request, order_id)
    if found is None:
        return _not_found()
    order, token = found
    order_page = _with_token(f"/orders/{order_id}", token)
    if order.status != "pending":
        raise web.HTTPSeeOther(
            order_page, headers=_REDIRECT_HEADERS
        )  # a repeated button: the page says how
    caller = Caller(user_id=None, role="user", request_id=request_id(request))
    try:
        await container(request).billing.complete_sandbox_checkout(caller, order_id, outcome)
    except RemoteCallError as e:
        if e.status != "FAILED_PRECONDITION":
            raise
        # Paid, failed or expired meanwhile (a second tab): the order page shows which.
    raise web.HTTPSeeOther(order_page, headers=_REDIRECT_HEADERS)


@routes.get("/orders/{order_id}")
async def order_page(request: web.Request) -> web.Response:
    order_id = request.match_info["order_id"]
    found = await _order_for(request, order_id)
    if found is None:
        returned = _PROVIDER_RETURN.get(request.query.get("checkout", ""))
        if returned is not None:
            # A payment provider's redirect (Stripe's success/cancel URL) carries no token: say
            # what happens next without telling whether such an order exists.
            return _page("Checkout", f"<p>{_e(returned)}</p>{_ORDERS_HINT}")
        return _not_found()
    order, token = found
    status = order.status
    content = (
        f"<p>Order <code>{_e(order.number)}</code>: <code>{_e(order.item_id)}</code>, "
        f"{_e(_amount(order.amount, order.currency))}.</p>"
        f"<p>Status: <strong>{_e(status)}</strong>. {_e(_STATUS_TEXT.get(status, ''))}</p>"
    )
    if status == "pending":
        checkout = _e(_with_token(f"/sandbox/checkout/{order_id}", token))
        content += f'<p><a href="{checkout}">Back to the checkout</a></p>'
    content += f'<p><a href="/#/orders/{_e(order_id)}">Back to Atelier</a></p>'
    return _page("Your order", content)

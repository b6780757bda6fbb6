"""A local server that speaks Stripe's API for the calls Atelier makes, and sends webhook events
signed like Stripe does. Test infrastructure, not product code.

What it speaks: ``Authorization: Bearer sk_test_…``; form-encoded bodies with bracket keys
(``line_items[0][price_data][currency]=usd``); ``Idempotency-Key`` replay (same key → the saved
response; same key, other parameters → 400 ``idempotency_error``); Stripe's error envelope.
Endpoints: ``POST /v1/customers``, ``POST /v1/customers/{id}``, ``POST /v1/checkout/sessions``,
``GET /v1/checkout/sessions/{id}``, ``POST /v1/checkout/sessions/{id}/expire``,
``POST /v1/refunds`` (by ``payment_intent``; queues the ``charge.refunded`` event in ``outbox``),
``POST /v1/subscriptions/{id}``,
``DELETE /v1/subscriptions/{id}``, ``GET /v1/invoice_payments`` (filters ``invoice``, ``status``,
``payment[payment_intent]``). Test controls are Python methods (``complete_session``,
``send`` …), standing in for a customer paying on Stripe's page.

Like the current API version: every paid invoice is paid by a PaymentIntent, linked to it only
through an InvoicePayment (a Charge no longer names its invoice). An API update of a customer
queues the ``customer.updated`` event Stripe would send in ``outbox``.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import re
import threading
import time
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web
from aiohttp.typedefs import Handler

from tests.support.threaded_aiohttp import ThreadedServer

API_KEY = "sk_test_atelier"
WEBHOOK_SECRET = "whsec_test_atelier"
PARAMS = web.RequestKey("params", dict[str, Any])


def parse_form(body: str) -> dict[str, Any]:
    """Stripe's bracket encoding → nested dicts and lists."""
    root: dict[str, Any] = {}
    for key, value in parse_qsl(body, keep_blank_values=True):
        parts = re.findall(r"[^\[\]]+", key)
        node = root
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    form: dict[str, Any] = _listify(root)
    return form


def _listify(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    if node and all(k.isdigit() for k in node):
        return [_listify(node[k]) for k in sorted(node, key=int)]
    return {k: _listify(v) for k, v in node.items()}


def sign(body: bytes, secret: str, timestamp: int) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def _error(status: int, etype: str, message: str) -> web.Response:
    return web.json_response({"error": {"type": etype, "message": message}}, status=status)


class FakeStripe:
    def __init__(self, webhook_url: str | None = None) -> None:
        self.webhook_url = webhook_url
        self.sessions: dict[str, dict[str, Any]] = {}
        self.customers: dict[str, dict[str, Any]] = {}
        self.subscriptions: dict[str, dict[str, Any]] = {}
        self.invoices: dict[str, dict[str, Any]] = {}
        self.invoice_payments: dict[str, dict[str, Any]] = {}
        self.refunds: dict[str, dict[str, Any]] = {}
        self.outbox: list[dict[str, Any]] = []
        self.down = False  # True: every API call answers 500, as during an outage
        self.requests: list[tuple[str, str, dict[str, Any]]] = []
        self._idempotent: dict[str, tuple[str, int, Any]] = {}
        self._seq = itertools.count(1)
        self._lock = threading.Lock()
        app = web.Application()
        app.router.add_post("/v1/customers", self._create_customer)
        app.router.add_post("/v1/customers/{id}", self._update_customer)
        app.router.add_post("/v1/checkout/sessions", self._create_session)
        app.router.add_get("/v1/checkout/sessions/{id}", self._get_session)
        app.router.add_post("/v1/checkout/sessions/{id}/expire", self._expire_session)
        app.router.add_post("/v1/refunds", self._create_refund)
        app.router.add_post("/v1/subscriptions/{id}", self._update_subscription)
        app.router.add_delete("/v1/subscriptions/{id}", self._cancel_subscription)
        app.router.add_get("/v1/invoice_payments", self._list_invoice_payments)
        app.middlewares.append(self._auth_and_idempotency)
        self._server = ThreadedServer(app)
        self.url = self._server.url

    def close(self) -> None:
        self._server.close()

    def _id(self, prefix: str) -> str:
        return f"{prefix}_test_{next(self._seq):06d}"

    # ---- protocol ---------------------------------------------------------------------------

    @web.middleware
    async def _auth_and_idempotency(
        self, request: web.Request, handler: Handler
    ) -> web.StreamResponse:
        if request.headers.get("Authorization") != f"Bearer {API_KEY}":
            return _error(401, "invalid_request_error", "Invalid API Key provided")
        if self.down:
            return _error(500, "api_error", "Stripe is having a bad day")
        body = await request.text()
        query = request.query_string
        params = parse_form(body) if body else parse_form(query) if query else {}
        request[PARAMS] = params
        self.requests.append((request.method, request.path, params))
        key = request.headers.get("Idempotency-Key")
        if request.method != "POST" or not key:
            response: web.StreamResponse = await handler(request)
            return response
        fingerprint = f"{request.path}?{body}"
        with self._lock:
            saved = self._idempotent.get(key)
        if saved is not None:
            if saved[0] != fingerprint:
                return _error(
                    400,
                    "idempotency_error",
                    "Keys for idempotent requests can only be used with the same parameters",
                )
            return web.json_response(
                saved[2], status=saved[1], headers={"Idempotent-Replayed": "true"}
            )
        response = await handler(request)
        assert isinstance(response, web.Response) and response.text is not None
        with self._lock:
            self._idempotent[key] = (fingerprint, response.status, json.loads(response.text))
        return response

    async def _create_customer(self, request: web.Request) -> web.Response:
        p = request[PARAMS]
        customer = {
            "id": self._id("cus"),
            "object": "customer",
            "email": p.get("email"),
            "name": p.get("name"),
            "metadata": p.get("metadata", {}),
            "created": int(time.time()),
        }
        self.customers[customer["id"]] = customer
        return web.json_response(customer)

    async def _update_customer(self, request: web.Request) -> web.Response:
        customer = self.customers.get(request.match_info["id"])
        if customer is None:
            return _error(404, "invalid_request_error", "No such customer")
        customer.update({k: v for k, v in request[PARAMS].items() if k in ("email", "name")})
        self.outbox.append(self.event("customer.updated", customer))
        return web.json_response(customer)

    async def _create_session(self, request: web.Request) -> web.Response:
        p = request[PARAMS]
        for required in ("mode", "line_items", "success_url"):
            if required not in p:
                return _error(400, "invalid_request_error", f"Missing required param: {required}.")
        item = p["line_items"][0]
        amount = int(item["price_data"]["unit_amount"]) * int(item.get("quantity", 1))
        sid = self._id("cs")
        session = {
            "id": sid,
            "object": "checkout.session",
            "mode": p["mode"],
            "url": f"{self.url}/pay/{sid}",
            "status": "open",
            "payment_status": "unpaid",
            "client_reference_id": p.get("client_reference_id"),
            "metadata": p.get("metadata", {}),
            "customer": p.get("customer"),
            "customer_email": p.get("customer_email"),
            "amount_total": amount,
            "amount_subtotal": amount,
            "currency": item["price_data"]["currency"],
            "subscription": None,
            "payment_intent": None,
            "invoice": None,
            "created": int(time.time()),
            "expires_at": int(p.get("expires_at", time.time() + 86400)),
            "livemode": False,
            "success_url": p["success_url"],
            "cancel_url": p.get("cancel_url"),
            "line_items": p["line_items"],
            "subscription_data": p.get("subscription_data"),
        }
        self.sessions[sid] = session
        return web.json_response(session)

    async def _get_session(self, request: web.Request) -> web.Response:
        session = self.sessions.get(request.match_info["id"])
        if session is None:
            return _error(404, "invalid_request_error", "No such checkout.session")
        return web.json_response(session)

    async def _expire_session(self, request: web.Request) -> web.Response:
        session = self.sessions.get(request.match_info["id"])
        if session is None:
            return _error(404, "invalid_request_error", "No such checkout.session")
        if session["status"] != "open":
            return _error(400, "invalid_request_error", "Only open sessions can be expired.")
        session["status"] = "expired"
        return web.json_response(session)

    def _paid_by(self, payment_intent: str) -> tuple[int, str, str | None] | None:
        """(amount, currency, customer) of what a PaymentIntent paid, if anything."""
        for session in self.sessions.values():
            if session.get("payment_intent") == payment_intent:
                return session["amount_total"], session["currency"], session["customer"]
        for ip in self.invoice_payments.values():
            if ip["payment"]["payment_intent"] == payment_intent:
                invoice = self.invoices[ip["invoice"]]
                return invoice["amount_paid"], invoice["currency"], invoice["customer"]
        return None

    async def _create_refund(self, request: web.Request) -> web.Response:
        p = request[PARAMS]
        intent = str(p.get("payment_intent") or "")
        paid = self._paid_by(intent) if intent else None
        if paid is None:
            return _error(400, "invalid_request_error", "No such payment_intent")
        total, currency, customer = paid
        already = sum(r["amount"] for r in self.refunds.values() if r["payment_intent"] == intent)
        amount = int(p.get("amount", total - already))
        if amount <= 0 or already + amount > total:
            return _error(400, "invalid_request_error", "Refund amount exceeds the charge.")
        refund = {
            "id": self._id("re"),
            "object": "refund",
            "amount": amount,
            "currency": currency,
            "payment_intent": intent,
            "reason": p.get("reason"),
            "metadata": p.get("metadata", {}),
            "status": "succeeded",
            "created": int(time.time()),
        }
        self.refunds[refund["id"]] = refund
        event = self._refunded_charge(intent, total, currency, customer)
        event["data"]["object"]["amount_refunded"] = already + amount
        self.outbox.append(event)
        return web.json_response(refund)

    async def _list_invoice_payments(self, request: web.Request) -> web.Response:
        p = request[PARAMS]
        wanted_pi = (p.get("payment") or {}).get("payment_intent")
        found = [
            ip
            for ip in self.invoice_payments.values()
            if (wanted_pi is None or ip["payment"]["payment_intent"] == wanted_pi)
            and ("invoice" not in p or ip["invoice"] == p["invoice"])
            and ("status" not in p or ip["status"] == p["status"])
        ]
        limit = int(p.get("limit", 10))
        return web.json_response(
            {
                "object": "list",
                "url": "/v1/invoice_payments",
                "has_more": len(found) > limit,
                "data": found[:limit],
            }
        )

    async def _update_subscription(self, request: web.Request) -> web.Response:
        sub = self.subscriptions.get(request.match_info["id"])
        if sub is None:
            return _error(404, "invalid_request_error", "No such subscription")
        if "cancel_at_period_end" in request[PARAMS]:
            sub["cancel_at_period_end"] = request[PARAMS]["cancel_at_period_end"] == "true"
        return web.json_response(sub)

    async def _cancel_subscription(self, request: web.Request) -> web.Response:
        sub = self.subscriptions.get(request.match_info["id"])
        if sub is None:
            return _error(404, "invalid_request_error", "No such subscription")
        sub["status"] = "canceled"
        return web.json_response(sub)

    # ---- test controls ------------------------------------------------------------------------

    def complete_session(self, session_id: str) -> dict[str, Any]:
        """The customer pays on Stripe's page; returns the checkout.session.completed event."""
        session = self.sessions[session_id]
        session.update(status="complete", payment_status="paid")
        if session["mode"] == "subscription":
            sub_id = self._id("sub")
            period_days = int(session["line_items"][0]["price_data"]["recurring"]["interval_count"])
            now = int(time.time())
            self.subscriptions[sub_id] = {
                "id": sub_id,
                "object": "subscription",
                "status": "active",
                "customer": session["customer"],
                "cancel_at_period_end": False,
                "metadata": (session.get("subscription_data") or {}).get("metadata", {}),
                "items": {
                    "data": [
                        {
                            "current_period_start": now,
                            "current_period_end": now + period_days * 86400,
                        }
                    ]
                },
            }
            first = self._paid_invoice(sub_id, "subscription_create", session["amount_total"])
            session.update(subscription=sub_id, invoice=first["id"])
        else:
            session["payment_intent"] = self._id("pi")
        return self.event("checkout.session.completed", session)

    def expire_session(self, session_id: str) -> dict[str, Any]:
        self.sessions[session_id].update(status="expired")
        return self.event("checkout.session.expired", self.sessions[session_id])

    def renewal_invoice(
        self, subscription_id: str, billing_reason: str = "subscription_cycle"
    ) -> dict[str, Any]:
        sub = self.subscriptions[subscription_id]
        item = sub["items"]["data"][0]
        length = item["current_period_end"] - item["current_period_start"]
        item["current_period_start"] = item["current_period_end"]
        item["current_period_end"] += length
        invoice = self._paid_invoice(subscription_id, billing_reason, 1999)
        return self.event("invoice.paid", invoice)

    def _paid_invoice(
        self, subscription_id: str, billing_reason: str, amount: int
    ) -> dict[str, Any]:
        """A subscription invoice paid by a new PaymentIntent, linked by an InvoicePayment."""
        sub = self.subscriptions[subscription_id]
        item = sub["items"]["data"][0]
        invoice_id, pi = self._id("in"), self._id("pi")
        invoice = {
            "id": invoice_id,
            "object": "invoice",
            "status": "paid",
            "billing_reason": billing_reason,
            "customer": sub["customer"],
            "amount_paid": amount,
            "currency": "usd",
            "parent": {
                "type": "subscription_details",
                "subscription_details": {
                    "subscription": subscription_id,
                    "metadata": sub["metadata"],
                },
            },
            "lines": {
                "data": [
                    {
                        "period": {
                            "start": item["current_period_start"],
                            "end": item["current_period_end"],
                        }
                    }
                ]
            },
        }
        self.invoices[invoice_id] = invoice
        payment_id = self._id("inpay")
        self.invoice_payments[payment_id] = {
            "id": payment_id,
            "object": "invoice_payment",
            "invoice": invoice_id,
            "amount_paid": amount,
            "amount_requested": amount,
            "currency": "usd",
            "is_default": True,
            "livemode": False,
            "created": int(time.time()),
            "status": "paid",
            "payment": {"type": "payment_intent", "payment_intent": pi},
            "status_transitions": {"paid_at": int(time.time()), "canceled_at": None},
        }
        return invoice

    def payment_intent_of(self, invoice_id: str) -> str:
        intent: str = next(
            ip["payment"]["payment_intent"]
            for ip in self.invoice_payments.values()
            if ip["invoice"] == invoice_id
        )
        return intent

    def subscription_event(
        self, subscription_id: str, deleted: bool = False, **changes: Any
    ) -> dict[str, Any]:
        sub = self.subscriptions[subscription_id]
        sub.update(changes)
        if deleted:
            sub["status"] = "canceled"
        return self.event(
            "customer.subscription.deleted" if deleted else "customer.subscription.updated", sub
        )

    def refund(self, session_id: str) -> dict[str, Any]:
        """The charge of a checkout refunded in full (a subscription's: its first invoice's)."""
        session = self.sessions[session_id]
        if session["mode"] == "subscription":
            return self.refund_invoice(session["invoice"])
        return self._refunded_charge(
            session["payment_intent"],
            session["amount_total"],
            session["currency"],
            session["customer"],
        )

    def refund_invoice(self, invoice_id: str) -> dict[str, Any]:
        invoice = self.invoices[invoice_id]
        return self._refunded_charge(
            self.payment_intent_of(invoice_id),
            invoice["amount_paid"],
            invoice["currency"],
            invoice["customer"],
        )

    def _refunded_charge(
        self, payment_intent: str, amount: int, currency: str, customer: str | None
    ) -> dict[str, Any]:
        charge = {
            "id": self._id("ch"),
            "object": "charge",
            "payment_intent": payment_intent,
            "amount": amount,
            "amount_refunded": amount,
            "currency": currency,
            "refunded": True,
            "customer": customer,
            "metadata": {},
        }
        return self.event("charge.refunded", charge)

    def customer_updated(self, customer_id: str, **changes: Any) -> dict[str, Any]:
        self.customers[customer_id].update(changes)
        return self.event("customer.updated", self.customers[customer_id])

    def event(self, etype: str, obj: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": self._id("evt"),
            "object": "event",
            "api_version": "2026-06-24.dahlia",
            "created": int(time.time()),
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None},
            "type": etype,
            "data": {"object": json.loads(json.dumps(obj))},
        }

    def send(
        self, event: dict[str, Any], *, secret: str = WEBHOOK_SECRET, timestamp: int | None = None
    ) -> int:
        """POST the event to the webhook endpoint, signed like Stripe; returns the HTTP status."""
        assert self.webhook_url, "no webhook endpoint configured"
        body = json.dumps(event).encode()
        ts = int(time.time()) if timestamp is None else timestamp
        request = urllib.request.Request(
            self.webhook_url,
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                "Stripe-Signature": sign(body, secret, ts),
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)

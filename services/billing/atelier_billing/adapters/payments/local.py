"""The local sandbox payment provider: real work, offline.

A checkout is a page of the gateway, ``/sandbox/checkout/{order_id}?token=<token>``. The token is
``<expiry unix seconds>.<base64url(user id)>.<hex HMAC-SHA256>`` over the order id, its user and the
order's expiry, keyed from the provider's secret (a key of its own, derived from the secret, so a
token is never a webhook signature): unguessable, tied to one order and expiring with it. Billing
stores the URL with the order; the gateway opens the page only for exactly that token (it reads the
user from the token, asks billing for that user's order and compares), so the URL answered by
``POST /v1/orders`` is the only way in. Its Pay / Fail buttons make this provider write its own
record of the payment (so ``query_payment`` can reconcile a lost webhook, like asking a real
provider) and build a notification signed like Stripe's:
``Atelier-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>``. The
webhook endpoint verifies it from the raw body and refuses stale or forged ones.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from atelier_billing.application.ports.payments import (
    Checkout,
    CheckoutRequest,
    OrderRef,
    OutgoingNotification,
    PaymentEvent,
    PaymentEventKind,
    PaymentState,
    PaymentStatusReport,
    RefundReceipt,
    RefundState,
)
from atelier_ports.clock import Clock
from atelier_ports.errors import InvalidNotification, ProviderRejected

SIGNATURE_HEADER = "Atelier-Signature"
CHECKOUT_TOKEN_PARAM = "token"
_CHECKOUT_KEY_LABEL = b"atelier sandbox checkout token v1"


def _mac(secret: str, body: bytes, timestamp: int) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, timestamp: int) -> str:
    return f"t={timestamp},v1={_mac(secret, body, timestamp)}"


def checkout_token(secret: str, order_id: str, user_id: str, expires_at: datetime) -> str:
    """The sandbox checkout token of one order: ``<exp>.<base64url(user_id)>.<hex mac>``."""
    exp = int(expires_at.timestamp())
    key = hmac.new(secret.encode(), _CHECKOUT_KEY_LABEL, hashlib.sha256).digest()
    message = f"{order_id}\n{user_id}\n{exp}".encode()
    mac = hmac.new(key, message, hashlib.sha256).hexdigest()
    user = base64.urlsafe_b64encode(user_id.encode()).rstrip(b"=").decode()
    return f"{exp}.{user}.{mac}"


class LocalPaymentProvider:
    def __init__(
        self,
        *,
        secret: str,
        checkout_base_url: str,
        webhook_url: str,
        records_dir: Path,
        clock: Clock,
        currency: str = "USD",
        tolerance: timedelta = timedelta(minutes=5),
    ) -> None:
        if not secret:
            raise ValueError("the local payment provider needs a signing secret")
        self._secret = secret
        self._checkout_base = checkout_base_url.rstrip("/")
        self._webhook_url = webhook_url
        self._records = records_dir
        self._clock = clock
        self._currency = currency.upper()
        self._tolerance = tolerance

    @property
    def name(self) -> str:
        return "local"

    @property
    def currency(self) -> str:
        return self._currency

    def create_checkout(self, request: CheckoutRequest) -> Checkout:
        token = checkout_token(self._secret, request.order_id, request.user_id, request.expires_at)
        return Checkout(
            provider_reference=f"local_{request.order_id}",
            url=(
                f"{self._checkout_base}/sandbox/checkout/{request.order_id}"
                f"?{CHECKOUT_TOKEN_PARAM}={token}"
            ),
            expires_at=request.expires_at,
        )

    def sandbox_notification(
        self, order: OrderRef, succeeded: bool, at: datetime
    ) -> OutgoingNotification:
        ts = int(at.timestamp())
        txn = f"ltx_{hashlib.sha256(order.order_id.encode()).hexdigest()[:24]}"
        kind = "payment.succeeded" if succeeded else "payment.failed"
        record = {
            "order_id": order.order_id,
            "state": str(PaymentState.PAID if succeeded else PaymentState.FAILED),
            "transaction_id": txn if succeeded else None,
            "amount": order.amount,
            "currency": order.currency,
        }
        self._save(order.order_id, record)
        body = json.dumps(
            {
                "id": f"evt_local_{order.order_id}_{kind}",
                "type": kind,
                "created": ts,
                "data": record,
            },
            separators=(",", ":"),
        ).encode()
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(self._secret, body, ts),
        }
        return OutgoingNotification(url=self._webhook_url, headers=headers, body=body)

    def parse_notification(self, headers: Mapping[str, str], body: bytes) -> PaymentEvent:
        header = next((v for k, v in headers.items() if k.lower() == SIGNATURE_HEADER.lower()), "")
        parts: dict[str, list[str]] = {}
        for item in header.split(","):
            key, _, value = item.strip().partition("=")
            parts.setdefault(key, []).append(value)
        try:
            ts = int(parts["t"][0])
        except (KeyError, ValueError) as exc:
            raise InvalidNotification("missing or malformed signature header") from exc
        expected = _mac(self._secret, body, ts)
        if not any(hmac.compare_digest(expected, v) for v in parts.get("v1", [])):
            raise InvalidNotification("signature does not match")
        now = self._clock.now().timestamp()
        if abs(now - ts) > self._tolerance.total_seconds():
            raise InvalidNotification("timestamp outside the tolerance window")
        try:
            event = json.loads(body)
            data = event["data"]
            kind = {
                "payment.succeeded": PaymentEventKind.PAYMENT_SUCCEEDED,
                "payment.failed": PaymentEventKind.PAYMENT_FAILED,
            }.get(event["type"], PaymentEventKind.IGNORED)
            return PaymentEvent(
                provider=self.name,
                event_id=str(event["id"]),
                kind=kind,
                occurred_at=datetime.fromtimestamp(int(event["created"]), UTC),
                order_id=str(data["order_id"]),
                transaction_id=data.get("transaction_id"),
                amount=int(data["amount"]),
                currency=str(data["currency"]),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidNotification("malformed notification body") from exc

    def query_payment(self, order: OrderRef) -> PaymentStatusReport:
        record = self._load(order.order_id)
        if record is None:
            return PaymentStatusReport(state=PaymentState.PENDING)
        return PaymentStatusReport(
            state=PaymentState(str(record["state"])),
            transaction_id=record.get("transaction_id"),
            amount=int(record["amount"]),
            currency=str(record["currency"]),
        )

    def ensure_customer(self, user_id: str, email: str | None, name: str | None) -> str | None:
        return None

    def update_customer(self, customer_id: str, email: str | None, name: str | None) -> None:
        return None

    def cancel_subscription(self, subscription_id: str, at_period_end: bool) -> None:
        return None

    def close_order(self, order: OrderRef) -> None:
        """The sandbox checkout page refuses an expired order by itself: nothing to close."""
        return None

    def refund(self, order: OrderRef, refund_no: str, amount: int, reason: str) -> RefundReceipt:
        """Refund at once in the provider's own record of the payment (once per refund_no)."""
        record = self._load(order.order_id)
        if record is None or str(record.get("state")) not in (
            PaymentState.PAID,
            PaymentState.REFUNDED,
        ):
            raise ProviderRejected("the sandbox has no payment of this order to refund")
        refund_id = f"lrf_{hashlib.sha256(refund_no.encode()).hexdigest()[:24]}"
        if record.get("refund_id") != refund_id:
            self._save(
                order.order_id,
                {
                    **record,
                    "state": str(PaymentState.REFUNDED),
                    "refund_id": refund_id,
                    "refunded": int(amount),
                },
            )
        return RefundReceipt(refund_id=refund_id, state=RefundState.SUCCEEDED)

    # The provider's own records ("its side" of each payment), one JSON file per order.
    def _path(self, order_id: str) -> Path:
        safe = "".join(ch for ch in order_id if ch.isalnum() or ch in "_-")
        return self._records / f"{safe}.json"

    def _save(self, order_id: str, record: Mapping[str, Any]) -> None:
        self._records.mkdir(parents=True, exist_ok=True)
        path = self._path(order_id)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record))
        os.replace(tmp, path)

    def _load(self, order_id: str) -> dict[str, Any] | None:
        try:
            data = json.loads(self._path(order_id).read_text())
        except FileNotFoundError:
            return None
        return data if isinstance(data, dict) else None

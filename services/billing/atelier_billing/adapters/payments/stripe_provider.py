"""Stripe as a payment provider, through the official SDK (``stripe.StripeClient``).

- Checkout Sessions: ``mode=payment`` for packs, ``mode=subscription`` for memberships; prices
  come from our catalog (``price_data``), our order id travels in ``client_reference_id`` and
  metadata; the idempotency key is derived from the order id so retries never make two sessions.
- Webhooks are verified by the SDK from the raw body (``Stripe-Signature``, tolerance 300 s) and
  mapped to provider-neutral events.
- Reconciliation retrieves the Checkout Session of a pending order.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import stripe

from atelier_billing.application.ports.payments import (
    Checkout,
    CheckoutMode,
    CheckoutRequest,
    OrderRef,
    PaymentEvent,
    PaymentEventKind,
    PaymentState,
    PaymentStatusReport,
    RefundReceipt,
    RefundState,
)
from atelier_ports.clock import Clock
from atelier_ports.errors import InvalidNotification, ProviderRejected, ProviderUnavailable

# Stripe accepts a session lifetime between 30 minutes and 24 hours.
_MIN_SESSION = timedelta(minutes=31)
_MAX_SESSION = timedelta(hours=23, minutes=59)


def _ts(value: Any) -> datetime | None:
    return datetime.fromtimestamp(int(value), UTC) if value else None


def _id(value: Any) -> str | None:
    """Stripe fields are an id or, when expanded, an object with an id."""
    if isinstance(value, dict):
        return str(value.get("id")) if value.get("id") else None
    return str(value) if value else None


class StripePaymentProvider:
    def __init__(
        self,
        *,
        api_key: str,
        webhook_secret: str,
        success_url: str,
        cancel_url: str,
        clock: Clock,
        currency: str = "USD",
        api_base: str | None = None,
        tolerance_seconds: int = 300,
        max_network_retries: int = 2,
    ) -> None:
        if not api_key or not webhook_secret:
            raise ValueError("Stripe needs STRIPE_API_KEY and STRIPE_WEBHOOK_SECRET")
        addresses: dict[str, str] = {"api": api_base} if api_base else {}
        self._client = stripe.StripeClient(
            api_key,
            base_addresses=addresses,  # type: ignore[arg-type]
            max_network_retries=max_network_retries,
        )
        self._webhook_secret = webhook_secret
        self._success_url = success_url
        self._cancel_url = cancel_url
        self._clock = clock
        self._currency = currency.upper()
        self._tolerance = tolerance_seconds

    @property
    def name(self) -> str:
        return "stripe"

    @property
    def currency(self) -> str:
        return self._currency

    # ---- outbound --------------------------------------------------------------------------

    def create_checkout(self, request: CheckoutRequest) -> Checkout:
        now = self._clock.now()
        expires = min(max(request.expires_at, now + _MIN_SESSION), now + _MAX_SESSION)
        metadata = {"order_id": request.order_id, "user_id": request.user_id}
        price_data: dict[str, Any] = {
            "currency": request.currency.lower(),
            "unit_amount": request.amount,
            "product_data": {"name": request.item_name, "metadata": {"item_id": request.item_id}},
        }
        params: dict[str, Any] = {
            "client_reference_id": request.order_id,
            "metadata": metadata,
            "success_url": self._success_url.format(order_id=request.order_id),
            "cancel_url": self._cancel_url.format(order_id=request.order_id),
            "expires_at": int(expires.timestamp()),
        }
        if request.mode is CheckoutMode.SUBSCRIPTION:
            price_data["recurring"] = {"interval": "day", "interval_count": request.period_days}
            params["mode"] = "subscription"
            params["subscription_data"] = {"metadata": metadata}
        else:
            params["mode"] = "payment"
            params["payment_intent_data"] = {"metadata": metadata}
        params["line_items"] = [{"price_data": price_data, "quantity": 1}]
        if request.customer_id:
            params["customer"] = request.customer_id
        elif request.customer_email:
            params["customer_email"] = request.customer_email
        session = self._call(
            lambda: self._client.v1.checkout.sessions.create(
                params=params,  # type: ignore[arg-type]
                options={"idempotency_key": f"checkout:{request.order_id}"},
            )
        )
        return Checkout(
            provider_reference=str(session.id),
            url=session.url,
            expires_at=_ts(session.expires_at) or expires,
        )

    def query_payment(self, order: OrderRef) -> PaymentStatusReport:
        if not order.provider_reference:
            return PaymentStatusReport(state=PaymentState.PENDING)
        session = self._call(
            lambda: self._client.v1.checkout.sessions.retrieve(str(order.provider_reference))
        )
        data = session.to_dict()
        if data.get("status") == "complete" and data.get("payment_status") == "paid":
            return PaymentStatusReport(
                state=PaymentState.PAID,
                transaction_id=self._transaction_of(data),
                amount=data.get("amount_total"),
                currency=str(data.get("currency", "")).upper(),
                subscription_id=_id(data.get("subscription")),
                customer_id=_id(data.get("customer")),
            )
        if data.get("status") == "expired":
            return PaymentStatusReport(state=PaymentState.EXPIRED)
        return PaymentStatusReport(state=PaymentState.PENDING)

    def ensure_customer(self, user_id: str, email: str | None, name: str | None) -> str | None:
        params: dict[str, Any] = {"metadata": {"user_id": user_id}}
        if email:
            params["email"] = email
        if name:
            params["name"] = name
        customer = self._call(
            lambda: self._client.v1.customers.create(
                params=params,  # type: ignore[arg-type]
                options={"idempotency_key": f"customer:{user_id}"},
            )
        )
        return str(customer.id)

    def update_customer(self, customer_id: str, email: str | None, name: str | None) -> None:
        params = {k: v for k, v in (("email", email), ("name", name)) if v}
        if params:
            self._call(
                lambda: self._client.v1.customers.update(customer_id, params=params)  # type: ignore[arg-type]
            )

    def cancel_subscription(self, subscription_id: str, at_period_end: bool) -> None:
        if at_period_end:
            self._call(
                lambda: self._client.v1.subscriptions.update(
                    subscription_id, params={"cancel_at_period_end": True}
                )
            )
        else:
            self._call(lambda: self._client.v1.subscriptions.cancel(subscription_id))

    def close_order(self, order: OrderRef) -> None:
        """Expire the order's Checkout Session (Stripe keeps one open at least 30 minutes, which
        may outlive our order); an already completed or expired session is left as it is."""
        if not order.provider_reference or not order.provider_reference.startswith("cs_"):
            return
        reference = order.provider_reference
        session = self._call(lambda: self._client.v1.checkout.sessions.retrieve(reference))
        if session.to_dict().get("status") == "open":
            self._call(lambda: self._client.v1.checkout.sessions.expire(reference))

    def refund(self, order: OrderRef, refund_no: str, amount: int, reason: str) -> RefundReceipt:
        """Refund the PaymentIntent that paid the order (a subscription's: its first invoice's),
        with an idempotency key of its own so a repeat never refunds twice."""
        transaction = order.transaction_id or ""
        intent = transaction if transaction.startswith("pi_") else None
        if intent is None and transaction.startswith("in_"):
            intent = self._intent_paying(transaction)
        if intent is None:
            raise ProviderRejected("the order names no Stripe payment to refund")
        params: dict[str, Any] = {
            "payment_intent": intent,
            "amount": int(amount),
            "reason": "requested_by_customer",
            "metadata": {"order_id": order.order_id, "refund_no": refund_no},
        }
        refund = self._call(
            lambda: self._client.v1.refunds.create(
                params=params,  # type: ignore[arg-type]
                options={"idempotency_key": f"refund:{refund_no}"},
            )
        )
        status = str(refund.status or "")
        if status in ("failed", "canceled"):
            raise ProviderRejected(f"Stripe refused the refund ({status})")
        return RefundReceipt(
            refund_id=str(refund.id),
            state=RefundState.SUCCEEDED if status == "succeeded" else RefundState.PENDING,
        )

    def _intent_paying(self, invoice_id: str) -> str | None:
        payments = self._call(
            lambda: self._client.v1.invoice_payments.list(
                params={"invoice": invoice_id, "status": "paid", "limit": 1}
            )
        )
        for payment in payments.to_dict().get("data") or []:
            intent = _id((payment.get("payment") or {}).get("payment_intent"))
            if intent:
                return intent
        return None

    def _call(self, fn: Any) -> Any:
        try:
            return fn()
        except (stripe.APIConnectionError, stripe.RateLimitError) as exc:
            raise ProviderUnavailable("Stripe is unreachable") from exc
        except stripe.StripeError as exc:
            if exc.http_status is not None and exc.http_status >= 500:
                raise ProviderUnavailable(f"Stripe answered {exc.http_status}") from exc
            raise ProviderRejected(
                f"Stripe refused the request ({exc.code or exc.http_status})"
            ) from exc

    # ---- inbound ---------------------------------------------------------------------------

    def parse_notification(self, headers: Mapping[str, str], body: bytes) -> PaymentEvent:
        signature = next((v for k, v in headers.items() if k.lower() == "stripe-signature"), "")
        try:
            stripe.WebhookSignature.verify_header(
                body.decode("utf-8"), signature, self._webhook_secret, self._tolerance
            )
            event = json.loads(body)
            return self._map(event)
        except stripe.SignatureVerificationError as exc:
            raise InvalidNotification("Stripe signature verification failed") from exc
        except (
            UnicodeDecodeError,
            ValueError,
            KeyError,
            TypeError,
            AttributeError,  # a field of the wrong shape, e.g. a list where an object belongs
            RecursionError,  # absurdly deep JSON
        ) as exc:
            raise InvalidNotification("malformed Stripe event") from exc

    def _map(self, event: dict[str, Any]) -> PaymentEvent:
        etype: str = event["type"]
        obj: dict[str, Any] = event["data"]["object"]
        base: dict[str, Any] = {
            "provider": self.name,
            "event_id": str(event["id"]),
            "occurred_at": _ts(event.get("created")) or self._clock.now(),
        }
        if etype.startswith("checkout.session."):
            order_id = obj.get("client_reference_id") or (obj.get("metadata") or {}).get("order_id")
            common: dict[str, Any] = {
                **base,
                "order_id": order_id,
                "customer_id": _id(obj.get("customer")),
                "subscription_id": _id(obj.get("subscription")),
            }
            paid: dict[str, Any] = {
                "transaction_id": self._transaction_of(obj),
                "amount": obj.get("amount_total"),
                "currency": str(obj.get("currency", "")).upper(),
            }
            if etype == "checkout.session.completed":
                if obj.get("payment_status") != "paid":  # async methods: wait for the outcome
                    return PaymentEvent(kind=PaymentEventKind.IGNORED, **base)
                return PaymentEvent(kind=PaymentEventKind.PAYMENT_SUCCEEDED, **common, **paid)
            if etype == "checkout.session.async_payment_succeeded":
                return PaymentEvent(kind=PaymentEventKind.PAYMENT_SUCCEEDED, **common, **paid)
            if etype == "checkout.session.async_payment_failed":
                return PaymentEvent(kind=PaymentEventKind.PAYMENT_FAILED, **common)
            if etype == "checkout.session.expired":
                return PaymentEvent(kind=PaymentEventKind.CHECKOUT_EXPIRED, **common)
        if etype == "invoice.paid":
            # The first invoice is the checkout itself (granted on completion); later ones renew.
            if obj.get("billing_reason") not in ("subscription_cycle", "subscription_update"):
                return PaymentEvent(kind=PaymentEventKind.IGNORED, **base)
            parent = (obj.get("parent") or {}).get("subscription_details") or {}
            lines = ((obj.get("lines") or {}).get("data") or [{}])[0]
            return PaymentEvent(
                kind=PaymentEventKind.SUBSCRIPTION_RENEWED,
                subscription_id=_id(parent.get("subscription")) or _id(obj.get("subscription")),
                transaction_id=str(obj["id"]),
                amount=obj.get("amount_paid"),
                currency=str(obj.get("currency", "")).upper(),
                customer_id=_id(obj.get("customer")),
                period_end=_ts((lines.get("period") or {}).get("end")),
                **base,
            )
        if etype in ("customer.subscription.updated", "customer.subscription.deleted"):
            items = (obj.get("items") or {}).get("data") or [{}]
            status = str(obj.get("status", ""))
            ended = etype.endswith(".deleted") or status in ("canceled", "incomplete_expired")
            return PaymentEvent(
                kind=(
                    PaymentEventKind.SUBSCRIPTION_CANCELED
                    if ended
                    else PaymentEventKind.SUBSCRIPTION_UPDATED
                ),
                subscription_id=str(obj["id"]),
                customer_id=_id(obj.get("customer")),
                period_end=_ts(items[0].get("current_period_end")),
                details={
                    "status": status,
                    "cancel_at_period_end": "true" if obj.get("cancel_at_period_end") else "false",
                },
                **base,
            )
        if etype == "charge.refunded":
            payment_intent = _id(obj.get("payment_intent"))
            # A subscription's charge pays an invoice: older API versions name it on the charge,
            # current ones only through the invoice's payments (InvoicePayment ↔ PaymentIntent).
            invoice = _id(obj.get("invoice")) or (
                self._invoice_paid_by(payment_intent) if payment_intent else None
            )
            return PaymentEvent(
                kind=PaymentEventKind.REFUNDED,
                transaction_id=payment_intent or str(obj["id"]),
                amount=obj.get("amount_refunded"),
                currency=str(obj.get("currency", "")).upper(),
                customer_id=_id(obj.get("customer")),
                order_id=(obj.get("metadata") or {}).get("order_id"),
                details={"invoice_id": invoice} if invoice else {},
                **base,
            )
        if etype == "customer.updated":
            details = {k: str(obj[k]) for k in ("email", "name") if obj.get(k)}
            return PaymentEvent(
                kind=PaymentEventKind.CUSTOMER_UPDATED,
                customer_id=str(obj["id"]),
                details=details,
                **base,
            )
        return PaymentEvent(kind=PaymentEventKind.IGNORED, **base)

    def _invoice_paid_by(self, payment_intent: str) -> str | None:
        """The invoice a PaymentIntent paid, if it paid one (a subscription's first invoice or a
        renewal); None for a one-off payment. Raises ProviderUnavailable when Stripe cannot be
        asked (the webhook then fails and Stripe delivers it again)."""
        payments = self._call(
            lambda: self._client.v1.invoice_payments.list(
                params={
                    "payment": {"type": "payment_intent", "payment_intent": payment_intent},
                    "limit": 1,
                }
            )
        )
        for payment in payments.to_dict().get("data") or []:
            invoice = _id(payment.get("invoice"))
            if invoice:
                return invoice
        return None

    @staticmethod
    def _transaction_of(session: Mapping[str, Any]) -> str:
        """One id per payment: the PaymentIntent (packs; charges refer to it), else the first
        invoice (subscriptions), else the session."""
        return (
            _id(session.get("payment_intent"))
            or _id(session.get("invoice"))
            or str(session.get("id"))
        )

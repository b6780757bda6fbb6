"""The payment provider port (local sandbox, Stripe, WeChat Pay).

It is shaped to fit every adapter: redirect checkouts (Stripe, local sandbox) return ``url``;
QR payments (WeChat Native) return ``code_url``; subscription renewals and refunds arrive as
provider-neutral :class:`PaymentEvent`s parsed from verified notifications.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, runtime_checkable


class CheckoutMode(enum.StrEnum):
    ONE_TIME = "one_time"  # a credit pack
    SUBSCRIPTION = "subscription"  # a membership plan, renewed by the provider where it can


@dataclass(frozen=True, slots=True)
class CheckoutRequest:
    order_id: str
    order_number: str
    user_id: str
    item_id: str
    item_name: str
    amount: int  # minor units
    currency: str  # ISO 4217, upper-case
    mode: CheckoutMode
    expires_at: datetime
    period_days: int = 0
    customer_id: str | None = None  # provider customer, when one exists
    customer_email: str | None = None


@dataclass(frozen=True, slots=True)
class Checkout:
    """What the browser needs to pay: a page to open and/or a QR payload."""

    provider_reference: str  # e.g. Stripe's checkout session id, WeChat's out_trade_no
    url: str | None = None
    code_url: str | None = None
    expires_at: datetime | None = None


class PaymentEventKind(enum.StrEnum):
    PAYMENT_SUCCEEDED = "payment_succeeded"
    PAYMENT_FAILED = "payment_failed"
    CHECKOUT_EXPIRED = "checkout_expired"
    SUBSCRIPTION_RENEWED = "subscription_renewed"
    SUBSCRIPTION_UPDATED = "subscription_updated"
    SUBSCRIPTION_CANCELED = "subscription_canceled"
    REFUNDED = "refunded"
    CUSTOMER_UPDATED = "customer_updated"
    IGNORED = "ignored"  # verified, but of a type we do not act on


@dataclass(frozen=True, slots=True)
class PaymentEvent:
    """A verified notification, in provider-neutral terms."""

    provider: str
    event_id: str  # unique per provider; the deduplication key
    kind: PaymentEventKind
    occurred_at: datetime
    order_id: str | None = None
    transaction_id: str | None = None
    amount: int | None = None  # minor units actually paid/refunded
    currency: str | None = None
    subscription_id: str | None = None
    customer_id: str | None = None
    period_end: datetime | None = None
    # Provider-neutral extras: customer email/name for CUSTOMER_UPDATED; "invoice_id";
    # "order_number" (our order number as the provider names it: must be the order's);
    # "payee_mismatch" (the verified event names another merchant/app: refused and recorded).
    details: Mapping[str, str] = field(default_factory=dict)


class PaymentState(enum.StrEnum):
    PENDING = "pending"
    PAID = "paid"
    FAILED = "failed"
    EXPIRED = "expired"
    REFUNDED = "refunded"


@dataclass(frozen=True, slots=True)
class PaymentStatusReport:
    """What the provider says about an order when asked (reconciliation)."""

    state: PaymentState
    transaction_id: str | None = None
    amount: int | None = None
    currency: str | None = None
    subscription_id: str | None = None
    customer_id: str | None = None
    period_end: datetime | None = None


@dataclass(frozen=True, slots=True)
class OrderRef:
    order_id: str
    order_number: str
    provider_reference: str | None
    amount: int
    currency: str
    transaction_id: str | None = None  # the provider's payment id, once paid


class RefundState(enum.StrEnum):
    SUCCEEDED = "succeeded"  # the money is on its way back
    PENDING = "pending"  # accepted; the provider notifies the outcome (WeChat: REFUND.SUCCESS)


@dataclass(frozen=True, slots=True)
class RefundReceipt:
    """The provider's answer to a refund request."""

    refund_id: str
    state: RefundState


@dataclass(frozen=True, slots=True)
class OutgoingNotification:
    """A signed notification ready to be delivered over HTTP (local sandbox, test servers)."""

    url: str
    headers: Mapping[str, str]
    body: bytes


class PaymentProvider(Protocol):
    """One payment channel. ``name`` is the channel id clients choose (``local``, ``stripe`` …)."""

    @property
    def name(self) -> str: ...

    @property
    def currency(self) -> str:
        """The currency this channel charges in (``USD``, ``CNY`` …)."""
        ...

    def create_checkout(self, request: CheckoutRequest) -> Checkout:
        """Start a payment. Must be idempotent per ``order_id``. Raises ProviderUnavailable."""
        ...

    def parse_notification(self, headers: Mapping[str, str], body: bytes) -> PaymentEvent:
        """Verify (signature, timestamp window) and parse a notification from its raw body.

        Raises InvalidNotification for anything unverifiable.
        """
        ...

    def query_payment(self, order: OrderRef) -> PaymentStatusReport:
        """Ask the provider for the order's payment state (reconciliation)."""
        ...

    def ensure_customer(self, user_id: str, email: str | None, name: str | None) -> str | None:
        """Return the provider's customer id for the user, creating it once; None if unused."""
        ...

    def update_customer(self, customer_id: str, email: str | None, name: str | None) -> None:
        """Push changed contact details to the provider's customer record."""
        ...

    def cancel_subscription(self, subscription_id: str, at_period_end: bool) -> None:
        """Stop renewals of a subscription (no-op for providers without subscriptions)."""
        ...

    def close_order(self, order: OrderRef) -> None:
        """Our order expired: make sure the provider no longer takes payment for it (no-op where
        the checkout expires by itself). Raises ProviderUnavailable / ProviderRejected."""
        ...

    def refund(self, order: OrderRef, refund_no: str, amount: int, reason: str) -> RefundReceipt:
        """Refund ``amount`` minor units of a paid order. ``refund_no`` is our refund's id and
        the idempotency key: asking again with it never refunds twice. Raises
        ProviderUnavailable / ProviderRejected."""
        ...


@runtime_checkable
class SandboxPaymentProvider(PaymentProvider, Protocol):
    """A provider whose checkout can be completed on this machine (the local sandbox)."""

    def sandbox_notification(
        self, order: OrderRef, succeeded: bool, at: datetime
    ) -> OutgoingNotification:
        """Build the signed notification the provider would send for this outcome."""
        ...


class NotificationSender(Protocol):
    """Delivers an outgoing notification (an HTTP POST to a webhook endpoint)."""

    def send(self, notification: OutgoingNotification) -> int:
        """POST it; returns the HTTP status. Raises ProviderUnavailable if unreachable."""
        ...

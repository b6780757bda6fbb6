"""Billing's ports: what the use cases need from the outside, as Protocols.

``persistence`` — the unit of work over billing's repositories; ``payments`` — payment providers
and the notification sender. Only billing uses them (ports that cross services live in
``atelier_ports``). May import the domain and ``atelier_ports`` only.
"""

from atelier_billing.application.ports.payments import (
    Checkout,
    CheckoutMode,
    CheckoutRequest,
    NotificationSender,
    OrderRef,
    OutgoingNotification,
    PaymentEvent,
    PaymentEventKind,
    PaymentProvider,
    PaymentState,
    PaymentStatusReport,
    RefundReceipt,
    RefundState,
    SandboxPaymentProvider,
)
from atelier_billing.application.ports.persistence import (
    AccountRepository,
    BillingUnitOfWork,
    BillingUnitOfWorkFactory,
    CustomerRepository,
    DuplicateKey,
    GrantRepository,
    HoldOutcome,
    HoldRepository,
    HoldWrite,
    LedgerLine,
    LedgerRepository,
    MembershipRepository,
    OrderRepository,
    PaymentEventRepository,
)

__all__ = [
    "AccountRepository",
    "BillingUnitOfWork",
    "BillingUnitOfWorkFactory",
    "Checkout",
    "CheckoutMode",
    "CheckoutRequest",
    "CustomerRepository",
    "DuplicateKey",
    "GrantRepository",
    "HoldOutcome",
    "HoldRepository",
    "HoldWrite",
    "LedgerLine",
    "LedgerRepository",
    "MembershipRepository",
    "NotificationSender",
    "OrderRef",
    "OrderRepository",
    "OutgoingNotification",
    "PaymentEvent",
    "PaymentEventKind",
    "PaymentEventRepository",
    "PaymentProvider",
    "PaymentState",
    "PaymentStatusReport",
    "RefundReceipt",
    "RefundState",
    "SandboxPaymentProvider",
]

"""Reconciliation (F12): ask the provider about an order, so a lost webhook never loses a
payment — on demand (refresh one order) and as a periodic sweep of pending orders."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from atelier_billing.application.orders import GetOrder, GetOrderHandler
from atelier_billing.application.payments.notifications import ApplyPaymentEventHandler
from atelier_billing.application.ports import (
    BillingUnitOfWorkFactory,
    PaymentEvent,
    PaymentEventKind,
    PaymentProvider,
    PaymentState,
)
from atelier_billing.application.providers import order_ref, provider_for
from atelier_billing.domain import errors
from atelier_billing.domain.model import Order, OrderStatus
from atelier_ports import problems
from atelier_ports.clock import Clock
from atelier_ports.errors import ProviderRejected, ProviderUnavailable

log = logging.getLogger("atelier.billing")

# What a provider's answer means as an event (other states change nothing).
_EVENT_OF_STATE = {
    PaymentState.PAID: PaymentEventKind.PAYMENT_SUCCEEDED,
    PaymentState.FAILED: PaymentEventKind.PAYMENT_FAILED,
    PaymentState.EXPIRED: PaymentEventKind.CHECKOUT_EXPIRED,
}
# Orders worth asking about: not yet paid (a late payment still pays a failed/expired one).
_OPEN = frozenset({OrderStatus.PENDING, OrderStatus.EXPIRED, OrderStatus.FAILED})


@dataclass(frozen=True, slots=True)
class RefreshOrder:
    user_id: str
    order_id: str


@dataclass(frozen=True, slots=True)
class ReconcilePendingOrders:
    min_age: timedelta
    limit: int = 100


class Reconcile:
    """Apply what the provider says about one order; True if that changed it."""

    def __init__(
        self,
        clock: Clock,
        providers: Mapping[str, PaymentProvider],
        apply_event: ApplyPaymentEventHandler,
    ) -> None:
        self._clock, self._providers, self._apply_event = clock, providers, apply_event

    def __call__(self, order: Order) -> bool:
        provider = provider_for(self._providers, order.channel)
        try:
            report = provider.query_payment(order_ref(order))
        except (ProviderUnavailable, ProviderRejected) as exc:
            raise errors.PaymentProviderUnavailable("could not reach the provider") from exc
        kind = _EVENT_OF_STATE.get(report.state)
        if kind is None:
            return False
        event = PaymentEvent(
            provider=order.channel,
            event_id=f"query:{order.id}:{report.state}",
            kind=kind,
            occurred_at=self._clock.now(),
            order_id=order.id,
            transaction_id=report.transaction_id,
            amount=report.amount,
            currency=report.currency,
            subscription_id=report.subscription_id,
            customer_id=report.customer_id,
            period_end=report.period_end,
        )
        return self._apply_event(event).applied


class RefreshOrderHandler:
    def __init__(self, get_order: GetOrderHandler, reconcile: Reconcile) -> None:
        self._get_order, self._reconcile = get_order, reconcile

    def __call__(self, cmd: RefreshOrder) -> Order:
        query = GetOrder(cmd.user_id, cmd.order_id)
        order = self._get_order(query)
        if order.status not in _OPEN:
            return order
        self._reconcile(order)
        return self._get_order(query)


class ReconcilePendingOrdersHandler:
    """The periodic sweep: ask providers about orders pending for a while. Returns how many
    orders this sweep changed."""

    def __init__(self, uow: BillingUnitOfWorkFactory, clock: Clock, reconcile: Reconcile) -> None:
        self._uow, self._clock, self._reconcile = uow, clock, reconcile

    def __call__(self, cmd: ReconcilePendingOrders) -> int:
        with self._uow() as uow:
            pending = list(uow.orders.pending_since(self._clock.now() - cmd.min_age, cmd.limit))
        changed = 0
        for order in pending:
            try:
                changed += self._reconcile(order)
            except problems.DomainError as exc:  # one bad order must not stop the sweep
                log.warning(
                    "reconciliation failed",
                    extra={"fields": {"order": order.id, "reason": exc.reason}},
                )
        return changed

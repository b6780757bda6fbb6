"""The shape of an event handler, and finding the order an event is about."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Protocol

from atelier_billing.application.ports import BillingUnitOfWork, PaymentEvent
from atelier_billing.domain import errors
from atelier_billing.domain.model import Order

log = logging.getLogger("atelier.billing")


class EventHandler(Protocol):
    def __call__(self, uow: BillingUnitOfWork, event: PaymentEvent, now: datetime) -> bool:
        """Apply the event inside ``uow`` (which the caller commits); True if it changed
        anything."""
        ...


def ignore(uow: BillingUnitOfWork, event: PaymentEvent, now: datetime) -> bool:
    """A verified event of a kind billing does not act on: recorded, nothing else."""
    return False


def find_order(uow: BillingUnitOfWork, event: PaymentEvent) -> Order | None:
    """By our order id, else by the provider's payment id, else by the invoice it paid (a
    subscription's first invoice is the transaction id of its order).

    An event that also names the order's number (WeChat's ``out_trade_no``) must name this
    order's: else PaymentOrderMismatch."""
    order = uow.orders.get(event.order_id) if event.order_id else None
    for transaction in (event.transaction_id, event.details.get("invoice_id")):
        if order is None and transaction:
            order = uow.orders.by_transaction(event.provider, transaction)
    if order is None or order.channel != event.provider:
        return None
    number = event.details.get("order_number")
    if number is not None and number != order.number:
        log.error(
            "payment event names another order number",
            extra={"fields": {"order": order.id, "event": event.event_id}},
        )
        raise errors.PaymentOrderMismatch("the event names another order number")
    return order


def order_of(uow: BillingUnitOfWork, event: PaymentEvent) -> Order:
    order = find_order(uow, event)
    if order is None:
        raise errors.OrderNotFound("the notification names an unknown order")
    return order

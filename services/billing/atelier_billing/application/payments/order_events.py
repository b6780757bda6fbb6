"""An order's payment succeeded (grant what it bought, in the same transaction: F11), failed, or
its checkout expired."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from atelier_billing.application.config import BillingConfig
from atelier_billing.application.credits import NewGrant, grant_credits, lock_account
from atelier_billing.application.payments.base import order_of
from atelier_billing.application.ports import BillingUnitOfWork, PaymentEvent
from atelier_billing.domain import errors
from atelier_billing.domain.model import (
    GrantSource,
    ItemKind,
    Order,
    OrderStatus,
    membership_paid,
    sources_of,
)
from atelier_ports.ids import IdGenerator

log = logging.getLogger("atelier.billing")


class PaymentSucceeded:
    def __init__(self, ids: IdGenerator, config: BillingConfig) -> None:
        self._ids, self._config = ids, config

    def __call__(self, uow: BillingUnitOfWork, event: PaymentEvent, now: datetime) -> bool:
        order = order_of(uow, event)
        if event.amount != order.amount or (event.currency or "").upper() != order.currency:
            log.error(
                "payment amount mismatch",
                extra={
                    "fields": {
                        "order": order.id,
                        "expected": f"{order.amount} {order.currency}",
                        "got": f"{event.amount} {event.currency}",
                    }
                },
            )
            raise errors.PaymentAmountMismatch("paid amount does not match the order")
        lock_account(uow, order.user_id)
        if not uow.orders.transition(
            order.id,
            sources_of(OrderStatus.PAID),
            OrderStatus.PAID,
            now,
            transaction_id=event.transaction_id,
        ):
            return False  # already paid (or refunded): nothing twice
        self._fulfil(uow, order, event, now)
        return True

    def _fulfil(
        self, uow: BillingUnitOfWork, order: Order, event: PaymentEvent, now: datetime
    ) -> None:
        """Grant what the order bought, in the transaction that marks it paid (F11)."""
        expires_at: datetime | None
        if order.item_kind is ItemKind.MEMBERSHIP:
            current = uow.memberships.get(order.user_id)
            membership = membership_paid(current, order, event.subscription_id, now)
            uow.memberships.put(membership)
            source, expires_at = GrantSource.MEMBERSHIP, membership.period_end
        else:
            item = self._config.catalog.get(order.item_id)
            validity = item.validity_days if item else None
            source = GrantSource.PACK
            expires_at = now + timedelta(days=validity) if validity else None
        grant = NewGrant(
            user_id=order.user_id,
            source=source,
            amount=order.credits,
            expires_at=expires_at,
            key=f"order:{order.id}",
            reference=f"order {order.number}",
        )
        grant_credits(uow, self._ids, grant, now)


class OrderClosed:
    """The payment failed or the checkout expired: a pending order moves to ``target``."""

    def __init__(self, target: OrderStatus) -> None:
        self._target = target

    def __call__(self, uow: BillingUnitOfWork, event: PaymentEvent, now: datetime) -> bool:
        order = order_of(uow, event)
        return uow.orders.transition(order.id, sources_of(self._target), self._target, now)

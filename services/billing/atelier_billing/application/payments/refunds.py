"""A refund: the order is marked refunded and the unspent part of what it bought is taken back
(never below zero; the domain's proration); a refunded membership or renewal ends the
membership at once, with the unspent quota of its period taken back."""

from __future__ import annotations

from datetime import datetime

from atelier_billing.application.credits import end_membership, lock_account, take_back
from atelier_billing.application.payments.base import find_order
from atelier_billing.application.ports import BillingUnitOfWork, PaymentEvent
from atelier_billing.domain import errors
from atelier_billing.domain.model import ItemKind, Order, OrderStatus, sources_of


def refunded(uow: BillingUnitOfWork, event: PaymentEvent, now: datetime) -> bool:
    order = find_order(uow, event)
    if order is not None:
        return _refund_order(uow, order, event, now)
    return _refund_renewal(uow, event, now)


def _refund_order(uow: BillingUnitOfWork, order: Order, event: PaymentEvent, now: datetime) -> bool:
    if order.status not in (OrderStatus.PAID, OrderStatus.REFUNDED):
        # Reordered deliveries: the refund came before the payment it refunds. Not recorded,
        # so the provider delivers it again (and a late payment then never undoes it).
        raise errors.RefundBeforePayment("the refunded payment has not arrived yet")
    lock_account(uow, order.user_id)
    target = OrderStatus.REFUNDED
    if not uow.orders.transition(order.id, sources_of(target), target, now):
        return False
    if order.item_kind is ItemKind.MEMBERSHIP:
        end_membership(uow, order.user_id, f"order {order.number}", now)
        return True
    grant = uow.grants.by_idempotency_key(f"order:{order.id}")
    if grant is None or grant.remaining == 0:
        return True
    wanted = order.credits_to_take_back(event.amount)
    take_back(uow, grant, wanted, f"order {order.number}", f"refund:{order.id}", now)
    return True


def _refund_renewal(uow: BillingUnitOfWork, event: PaymentEvent, now: datetime) -> bool:
    """A refunded renewal: that period's quota goes, and the membership ends."""
    invoice = event.details.get("invoice_id")
    renewal = (
        uow.grants.by_idempotency_key(f"renewal:{event.provider}:{invoice}") if invoice else None
    )
    if renewal is None:
        raise errors.OrderNotFound("the refund names an unknown payment")
    lock_account(uow, renewal.user_id)
    key = f"refund:{renewal.id}"
    if uow.ledger.has_key(key):
        return False
    end_membership(uow, renewal.user_id, f"renewal {invoice}", now)
    if not uow.ledger.has_key(key):
        # nothing unspent was left: remember the refund all the same
        take_back(uow, renewal, 0, f"renewal {invoice}", key, now, memo=True)
    return True

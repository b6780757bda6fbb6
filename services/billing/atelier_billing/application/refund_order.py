"""An admin refunds an order (F15): through the order's provider, then the refund's effect —
the unspent credits clawed back, a refunded membership ended (``payments.refunds``) — applied
once, as the event the provider's own refund notification will later repeat."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from atelier_billing.application.inputs import MAX_REASON
from atelier_billing.application.payments.notifications import ApplyPaymentEventHandler
from atelier_billing.application.ports import (
    BillingUnitOfWorkFactory,
    PaymentEvent,
    PaymentEventKind,
    PaymentProvider,
)
from atelier_billing.application.providers import order_ref, provider_for
from atelier_billing.domain import errors
from atelier_billing.domain.model import ItemKind, MembershipStatus, Order, OrderStatus
from atelier_ports import problems
from atelier_ports.clock import Clock
from atelier_ports.errors import ProviderRejected, ProviderUnavailable

log = logging.getLogger("atelier.billing")


@dataclass(frozen=True, slots=True)
class RefundOrder:
    admin: bool
    order_id: str
    reason: str = ""


def refund_number(order: Order) -> str:
    """Our id of an order's (full) refund: the provider's idempotency key, so a repeated or
    concurrent admin refund never refunds twice."""
    return f"RF-{order.number}"


class RefundOrderHandler:
    def __init__(
        self,
        uow: BillingUnitOfWorkFactory,
        clock: Clock,
        providers: Mapping[str, PaymentProvider],
        apply_event: ApplyPaymentEventHandler,
    ) -> None:
        self._uow, self._clock = uow, clock
        self._providers, self._apply_event = providers, apply_event

    def __call__(self, cmd: RefundOrder) -> Order:
        if not cmd.admin:
            raise errors.AdminOnly("only an admin can refund an order")
        reason = cmd.reason.strip()
        if len(reason) > MAX_REASON:
            raise problems.InvalidArgument(
                f"reason is longer than {MAX_REASON} characters", field="reason"
            )
        with self._uow() as uow:
            order = uow.orders.get(cmd.order_id)
            membership = uow.memberships.get(order.user_id) if order else None
        if order is None:
            raise errors.OrderNotFound("order not found")
        if order.status is OrderStatus.REFUNDED:
            return order  # a repeat: refunded once
        if order.status is not OrderStatus.PAID:
            raise errors.OrderNotRefundable(f"a {order.status} order cannot be refunded")
        provider = provider_for(self._providers, order.channel)
        try:
            receipt = provider.refund(
                order_ref(order), refund_number(order), order.amount, reason or "refund"
            )
            if (
                order.item_kind is ItemKind.MEMBERSHIP
                and membership is not None
                and membership.subscription_id
                and membership.status is MembershipStatus.ACTIVE
            ):
                # no renewal of a refunded membership
                provider.cancel_subscription(membership.subscription_id, at_period_end=False)
        except ProviderUnavailable as exc:
            raise errors.PaymentProviderUnavailable(f"could not reach {order.channel}") from exc
        except ProviderRejected as exc:
            raise errors.PaymentProviderRejected(f"{order.channel} refused the refund") from exc
        self._apply_event(
            PaymentEvent(
                provider=order.channel,
                event_id=f"refund-request:{order.id}",
                kind=PaymentEventKind.REFUNDED,
                occurred_at=self._clock.now(),
                order_id=order.id,
                transaction_id=order.provider_transaction_id,
                amount=order.amount,
                currency=order.currency,
                details={"refund_id": receipt.refund_id},
            )
        )
        log.info(
            "order refunded",
            extra={
                "fields": {
                    "order": order.id,
                    "channel": order.channel,
                    "refund": receipt.refund_id,
                    "state": receipt.state,
                }
            },
        )
        with self._uow() as uow:
            refunded = uow.orders.get(order.id)
        if refunded is None:
            raise errors.OrderNotFound("order not found")
        return refunded

"""Finding the configured payment provider of a channel, and what it is told about an order."""

from __future__ import annotations

from collections.abc import Mapping

from atelier_billing.application.inputs import shown
from atelier_billing.application.ports import OrderRef, PaymentProvider
from atelier_billing.domain import errors
from atelier_billing.domain.model import Order


def provider_for(providers: Mapping[str, PaymentProvider], channel: str) -> PaymentProvider:
    provider = providers.get(channel)
    if provider is None:
        raise errors.PaymentProviderUnavailable(f"channel {shown(channel)} is not configured")
    return provider


def order_ref(order: Order) -> OrderRef:
    return OrderRef(
        order_id=order.id,
        order_number=order.number,
        provider_reference=order.provider_reference,
        amount=order.amount,
        currency=order.currency,
        transaction_id=order.provider_transaction_id,
    )

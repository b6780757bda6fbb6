"""Checkout: start the provider's payment for a new order (with the user's customer record at the
provider, created once), and complete a sandbox checkout. Provider calls never happen inside a
unit of work."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace

from atelier_billing.application.config import BillingConfig
from atelier_billing.application.ports import (
    BillingUnitOfWorkFactory,
    CheckoutMode,
    CheckoutRequest,
    DuplicateKey,
    NotificationSender,
    PaymentProvider,
    SandboxPaymentProvider,
)
from atelier_billing.application.providers import order_ref, provider_for
from atelier_billing.domain import errors
from atelier_billing.domain.model import ItemKind, Order, OrderStatus, sources_of
from atelier_ports.clock import Clock
from atelier_ports.errors import ProviderRejected, ProviderUnavailable

log = logging.getLogger("atelier.billing")


class StartCheckout:
    """A step of creating an order: ask the provider for a checkout and remember it; a refusal
    fails the order."""

    def __init__(self, uow: BillingUnitOfWorkFactory, clock: Clock, config: BillingConfig) -> None:
        self._uow, self._clock, self._config = uow, clock, config

    def __call__(self, order: Order, provider: PaymentProvider) -> Order:
        item = self._config.catalog.get(order.item_id)
        try:
            customer_id = self._customer(order.user_id, provider)
            checkout = provider.create_checkout(
                CheckoutRequest(
                    order_id=order.id,
                    order_number=order.number,
                    user_id=order.user_id,
                    item_id=order.item_id,
                    item_name=item.name if item else order.item_id,
                    amount=order.amount,
                    currency=order.currency,
                    mode=(
                        CheckoutMode.SUBSCRIPTION
                        if order.item_kind is ItemKind.MEMBERSHIP
                        else CheckoutMode.ONE_TIME
                    ),
                    expires_at=order.expires_at,
                    period_days=order.period_days,
                    customer_id=customer_id,
                )
            )
        except ProviderUnavailable as exc:
            log.warning("checkout failed", extra={"fields": {"order": order.id, "error": str(exc)}})
            raise errors.PaymentProviderUnavailable(
                "the payment provider is unavailable; try again"
            ) from exc
        except ProviderRejected as exc:
            log.error("checkout refused", extra={"fields": {"order": order.id, "error": str(exc)}})
            with self._uow() as uow:
                uow.orders.transition(
                    order.id,
                    sources_of(OrderStatus.FAILED),
                    OrderStatus.FAILED,
                    self._clock.now(),
                )
                uow.commit()
            raise errors.PaymentProviderRejected("the payment provider refused the order") from exc
        with self._uow() as uow:
            uow.orders.set_checkout(
                order.id, checkout.url, checkout.code_url, checkout.provider_reference
            )
            uow.commit()
        return replace(
            order,
            checkout_url=checkout.url,
            checkout_code_url=checkout.code_url,
            provider_reference=checkout.provider_reference,
        )

    def _customer(self, user_id: str, provider: PaymentProvider) -> str | None:
        """The user's customer at the provider: created once, remembered (F3)."""
        with self._uow() as uow:
            known = uow.customers.get(user_id, provider.name)
            account = uow.accounts.get(user_id)
        if known is not None or account is None:
            return known
        customer_id = provider.ensure_customer(user_id, account.email, account.name)
        if customer_id is None:
            return None
        try:
            with self._uow() as uow:
                uow.customers.add(user_id, provider.name, customer_id)
                uow.commit()
        except DuplicateKey:
            with self._uow() as uow:
                return uow.customers.get(user_id, provider.name)
        return customer_id


@dataclass(frozen=True, slots=True)
class CompleteSandboxCheckout:
    order_id: str
    paid: bool


class CompleteSandboxCheckoutHandler:
    """The sandbox page's Pay/Fail: the local provider sends its signed notification to our
    webhook endpoint, which verifies it like any provider's."""

    def __init__(
        self,
        uow: BillingUnitOfWorkFactory,
        clock: Clock,
        providers: Mapping[str, PaymentProvider],
        sender: NotificationSender | None,
    ) -> None:
        self._uow, self._clock, self._providers, self._sender = uow, clock, providers, sender

    def __call__(self, cmd: CompleteSandboxCheckout) -> Order:
        with self._uow() as uow:
            order = uow.orders.get(cmd.order_id)
        if order is None:
            raise errors.OrderNotFound("order not found")
        provider = provider_for(self._providers, order.channel)
        if not isinstance(provider, SandboxPaymentProvider) or self._sender is None:
            raise errors.NotSandboxChannel("this order cannot be paid in the sandbox")
        if order.status is not OrderStatus.PENDING:
            raise errors.OrderNotPayable(f"the order is {order.status}")
        notification = provider.sandbox_notification(order_ref(order), cmd.paid, self._clock.now())
        try:
            status = self._sender.send(notification)
        except ProviderUnavailable as exc:
            raise errors.PaymentProviderUnavailable("the webhook endpoint is unreachable") from exc
        if not 200 <= status < 300:
            raise errors.PaymentProviderUnavailable(f"the webhook endpoint answered {status}")
        with self._uow() as uow:
            updated = uow.orders.get(cmd.order_id)
        assert updated is not None
        return updated

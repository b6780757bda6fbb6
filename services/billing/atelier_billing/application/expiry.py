"""Expiry (F5, F10, F13): due grants lose their unspent credits (one user per unit of work),
pending orders past their time expire (and are closed at their provider, so a QR code shown
earlier can no longer be paid), memberships past their period expire."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from atelier_billing.application.credits import expire_user_grants, lock_account
from atelier_billing.application.ports import BillingUnitOfWorkFactory, PaymentProvider
from atelier_billing.application.providers import order_ref
from atelier_billing.domain.model import Order, OrderStatus, sources_of
from atelier_ports.clock import Clock
from atelier_ports.errors import ProviderRejected, ProviderUnavailable

log = logging.getLogger("atelier.billing")


@dataclass(frozen=True, slots=True)
class RunExpiry:
    batch: int = 500


@dataclass(frozen=True, slots=True)
class ExpiryReport:
    expired_grants: int = 0
    expired_credits: int = 0
    expired_orders: int = 0
    expired_memberships: int = 0


class RunExpiryHandler:
    def __init__(
        self,
        uow: BillingUnitOfWorkFactory,
        clock: Clock,
        providers: Mapping[str, PaymentProvider] | None = None,
    ) -> None:
        self._uow, self._clock = uow, clock
        self._providers: Mapping[str, PaymentProvider] = providers or {}

    def __call__(self, cmd: RunExpiry | None = None) -> ExpiryReport:
        batch = (cmd or RunExpiry()).batch
        now = self._clock.now()
        grants = credits = 0
        with self._uow() as uow:
            users = list(uow.grants.users_with_due_grants(now))
        for user_id in users:
            with self._uow() as uow:
                lock_account(uow, user_id)
                n, c = expire_user_grants(uow, user_id, now)
                uow.commit()
            grants, credits = grants + n, credits + c
        closed: list[Order] = []
        expired = OrderStatus.EXPIRED
        with self._uow() as uow:
            for order in uow.orders.due_for_expiry(now, batch):
                if uow.orders.transition(order.id, sources_of(expired), expired, now):
                    closed.append(order)
            memberships = uow.memberships.expire_due(now)
            uow.commit()
        for order in closed:
            self._close_at_provider(order)
        return ExpiryReport(grants, credits, len(closed), memberships)

    def _close_at_provider(self, order: Order) -> None:
        """Best effort: the provider's own deadline (WeChat's time_expire) closes it anyway, and
        a payment that still arrives pays the expired order (money received is never lost)."""
        provider = self._providers.get(order.channel)
        if provider is None:
            return
        try:
            provider.close_order(order_ref(order))
        except (ProviderUnavailable, ProviderRejected) as exc:
            log.warning(
                "could not close an expired order at its provider",
                extra={"fields": {"order": order.id, "channel": order.channel, "why": str(exc)}},
            )

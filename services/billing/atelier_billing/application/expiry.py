"""Expiry (F5, F10, F13): due grants lose their unspent credits (one user per unit of work),
pending orders past their time expire, memberships past their period expire."""

from __future__ import annotations

from dataclasses import dataclass

from atelier_billing.application.credits import expire_user_grants, lock_account
from atelier_billing.application.ports import BillingUnitOfWorkFactory
from atelier_billing.domain.model import OrderStatus, sources_of
from atelier_ports.clock import Clock


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
    def __init__(self, uow: BillingUnitOfWorkFactory, clock: Clock) -> None:
        self._uow, self._clock = uow, clock

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
        orders = 0
        expired = OrderStatus.EXPIRED
        with self._uow() as uow:
            for order in uow.orders.due_for_expiry(now, batch):
                if uow.orders.transition(order.id, sources_of(expired), expired, now):
                    orders += 1
            memberships = uow.memberships.expire_due(now)
            uow.commit()
        return ExpiryReport(grants, credits, orders, memberships)

"""Subscription events: a renewal grants the next period's quota (once per invoice); an update or
deletion changes the membership."""

from __future__ import annotations

from datetime import datetime

from atelier_billing.application.config import BillingConfig
from atelier_billing.application.credits import NewGrant, grant_credits, lock_account
from atelier_billing.application.ports import BillingUnitOfWork, PaymentEvent, PaymentEventKind
from atelier_billing.domain import errors
from atelier_billing.domain.model import GrantSource, Membership
from atelier_ports.ids import IdGenerator


def _membership_of(uow: BillingUnitOfWork, event: PaymentEvent, what: str) -> Membership:
    membership = (
        uow.memberships.by_subscription(event.subscription_id) if event.subscription_id else None
    )
    if membership is None:
        # The checkout that created the subscription has not been applied yet (events arrive
        # out of order): refuse, so the provider delivers this again later.
        raise errors.SubscriptionNotYetKnown(f"{what} for a subscription we do not know yet")
    return membership


class SubscriptionRenewed:
    """A subscription invoice was paid: grant the next period's quota, once per invoice."""

    def __init__(self, ids: IdGenerator, config: BillingConfig) -> None:
        self._ids, self._config = ids, config

    def __call__(self, uow: BillingUnitOfWork, event: PaymentEvent, now: datetime) -> bool:
        membership = _membership_of(uow, event, "renewal")
        plan = self._config.catalog.get(membership.plan_id)
        if plan is None:
            raise errors.CatalogItemNotFound(f"plan {membership.plan_id!r} left the catalog")
        key = f"renewal:{event.provider}:{event.transaction_id or event.event_id}"
        if uow.grants.by_idempotency_key(key) is not None:
            return False
        period = membership.renewal_period(now, plan.period_days, event.period_end)
        lock_account(uow, membership.user_id)
        uow.memberships.put(membership.renewed(period, plan.credits))
        grant = NewGrant(
            user_id=membership.user_id,
            source=GrantSource.MEMBERSHIP,
            amount=plan.credits,
            expires_at=period.end,
            key=key,
            reference=f"renewal {event.transaction_id or ''}".strip(),
        )
        grant_credits(uow, self._ids, grant, now)
        return True


def subscription_changed(uow: BillingUnitOfWork, event: PaymentEvent, now: datetime) -> bool:
    """Updated (cancel at period end or not) or deleted at the provider."""
    membership = _membership_of(uow, event, "update")
    updated = membership.changed_by_provider(
        canceled=event.kind is PaymentEventKind.SUBSCRIPTION_CANCELED,
        cancel_at_period_end=event.details.get("cancel_at_period_end") == "true",
    )
    if updated == membership:
        return False
    uow.memberships.put(updated)
    return True

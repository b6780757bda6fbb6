"""Handle a provider's notification: verify it, then apply its event once.

Each event kind has its handler in a table; events that need the provider (``customer.updated``)
are handled outside a unit of work, every other one inside the unit of work that records it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from atelier_billing.application.config import BillingConfig
from atelier_billing.application.inputs import shown
from atelier_billing.application.payments.base import EventHandler, ignore
from atelier_billing.application.payments.customers import CustomerUpdated
from atelier_billing.application.payments.order_events import OrderClosed, PaymentSucceeded
from atelier_billing.application.payments.outcome import NotificationOutcome
from atelier_billing.application.payments.refunds import refunded
from atelier_billing.application.payments.renewals import (
    SubscriptionRenewed,
    subscription_changed,
)
from atelier_billing.application.ports import (
    BillingUnitOfWorkFactory,
    DuplicateKey,
    PaymentEvent,
    PaymentEventKind,
    PaymentProvider,
)
from atelier_billing.domain import errors
from atelier_billing.domain.model import OrderStatus
from atelier_ports.clock import Clock
from atelier_ports.errors import InvalidNotification, ProviderRejected, ProviderUnavailable
from atelier_ports.ids import IdGenerator

log = logging.getLogger("atelier.billing")


def event_handlers(ids: IdGenerator, config: BillingConfig) -> dict[PaymentEventKind, EventHandler]:
    """One handler per event kind, applied inside the unit of work that records the event."""
    return {
        PaymentEventKind.PAYMENT_SUCCEEDED: PaymentSucceeded(ids, config),
        PaymentEventKind.PAYMENT_FAILED: OrderClosed(OrderStatus.FAILED),
        PaymentEventKind.CHECKOUT_EXPIRED: OrderClosed(OrderStatus.EXPIRED),
        PaymentEventKind.SUBSCRIPTION_RENEWED: SubscriptionRenewed(ids, config),
        PaymentEventKind.SUBSCRIPTION_UPDATED: subscription_changed,
        PaymentEventKind.SUBSCRIPTION_CANCELED: subscription_changed,
        PaymentEventKind.REFUNDED: refunded,
        # handled before any unit of work (it may call the provider): see HandleNotification
        PaymentEventKind.CUSTOMER_UPDATED: ignore,
        PaymentEventKind.IGNORED: ignore,
    }


class ApplyPaymentEventHandler:
    """Apply one verified event once: deduplicated by the provider's event id, applied and
    recorded in one unit of work."""

    def __init__(
        self,
        uow: BillingUnitOfWorkFactory,
        clock: Clock,
        handlers: Mapping[PaymentEventKind, EventHandler],
    ) -> None:
        self._uow, self._clock, self._handlers = uow, clock, handlers

    def __call__(self, event: PaymentEvent) -> NotificationOutcome:
        now = self._clock.now()
        handler = self._handlers[event.kind]
        try:
            with self._uow() as uow:
                if event.details.get("payee_mismatch"):
                    log.error(
                        "payment event for another payee",
                        extra={"fields": {"provider": event.provider, "event": event.event_id}},
                    )
                    raise errors.PaymentPayeeMismatch("the event names another merchant or app")
                if uow.payment_events.seen(event.provider, event.event_id):
                    return NotificationOutcome(False, event.event_id, event.order_id)
                applied = handler(uow, event, now)
                uow.payment_events.record(
                    event.provider, event.event_id, event.kind, event.order_id, now
                )
                uow.commit()
        except DuplicateKey:
            return NotificationOutcome(False, event.event_id, event.order_id)
        except errors.PaymentMismatch:
            self._record_refusal(event, now)
            raise
        log.info(
            "payment event",
            extra={"fields": {"provider": event.provider, "kind": event.kind, "applied": applied}},
        )
        return NotificationOutcome(applied, event.event_id, event.order_id)

    def _record_refusal(self, event: PaymentEvent, now: datetime) -> None:
        """A verified event that does not match its order (amount, currency, order number) never
        pays, and is remembered as ``refused:<event id>`` — never under its own id, so it does
        not stop a genuine delivery of that event."""
        try:
            with self._uow() as uow:
                key = f"refused:{event.event_id}"[:255]
                if not uow.payment_events.seen(event.provider, key):
                    uow.payment_events.record(event.provider, key, event.kind, event.order_id, now)
                    uow.commit()
        except DuplicateKey:
            pass  # a concurrent twin recorded it


@dataclass(frozen=True, slots=True)
class HandleNotification:
    provider: str
    headers: Mapping[str, str]
    body: bytes


class HandleNotificationHandler:
    def __init__(
        self,
        providers: Mapping[str, PaymentProvider],
        apply_event: ApplyPaymentEventHandler,
        customer_updated: CustomerUpdated,
    ) -> None:
        self._providers = providers
        # Kinds handled outside a unit of work; every other kind goes to ``apply_event``.
        self._outside: dict[PaymentEventKind, Callable[[PaymentEvent], NotificationOutcome]] = {
            PaymentEventKind.CUSTOMER_UPDATED: customer_updated,
        }
        self._apply_event = apply_event

    def __call__(self, cmd: HandleNotification) -> NotificationOutcome:
        provider = self._providers.get(cmd.provider)
        if provider is None:
            raise errors.UnknownProvider(
                f"no payment provider {shown(cmd.provider)}", field="provider"
            )
        try:
            event = provider.parse_notification(cmd.headers, cmd.body)
        except InvalidNotification as exc:
            log.warning(
                "notification refused",
                extra={"fields": {"provider": cmd.provider, "why": str(exc)}},
            )
            raise errors.InvalidSignature("the notification could not be verified") from exc
        except (ProviderUnavailable, ProviderRejected) as exc:
            # Reading the event needed the provider (e.g. which invoice a refund paid): not
            # recorded, so the provider delivers it again.
            raise errors.PaymentProviderUnavailable(
                f"could not ask {cmd.provider} about the notification"
            ) from exc
        return self._outside.get(event.kind, self._apply_event)(event)

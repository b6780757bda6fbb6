"""``customer.updated``: the gateway's profile is the source of truth for contact details (#14).

Billing's copy is only what the gateway pushed; an edit made at the provider is not taken over
but overwritten with billing's copy, deliberately and logged. Our own push comes back as a
``customer.updated`` that matches the copy: a no-op, so there is no loop. It may call the
provider, so it runs outside any unit of work (one to read, one to record).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from atelier_billing.application.payments.outcome import NotificationOutcome
from atelier_billing.application.ports import (
    BillingUnitOfWorkFactory,
    DuplicateKey,
    PaymentEvent,
    PaymentProvider,
)
from atelier_billing.application.providers import provider_for
from atelier_billing.domain import errors
from atelier_billing.domain.model import Account
from atelier_ports.clock import Clock
from atelier_ports.errors import ProviderRejected, ProviderUnavailable

log = logging.getLogger("atelier.billing")


class CustomerUpdated:
    def __init__(
        self,
        uow: BillingUnitOfWorkFactory,
        clock: Clock,
        providers: Mapping[str, PaymentProvider],
    ) -> None:
        self._uow, self._clock, self._providers = uow, clock, providers

    def __call__(self, event: PaymentEvent) -> NotificationOutcome:
        with self._uow() as uow:
            if uow.payment_events.seen(event.provider, event.event_id):
                return NotificationOutcome(False, event.event_id, None)
            user_id = (
                uow.customers.by_customer(event.provider, event.customer_id)
                if event.customer_id
                else None
            )
            account = uow.accounts.get(user_id) if user_id else None
        overwritten = False
        if account is not None and event.customer_id:
            overwritten = self._restore(event, event.customer_id, account)
        try:
            with self._uow() as uow:
                uow.payment_events.record(
                    event.provider, event.event_id, event.kind, None, self._clock.now()
                )
                uow.commit()
        except DuplicateKey:
            return NotificationOutcome(False, event.event_id, None)
        return NotificationOutcome(overwritten, event.event_id, None)

    def _restore(self, event: PaymentEvent, customer_id: str, account: Account) -> bool:
        """Overwrite a provider-side edit with billing's copy; True if one was overwritten."""
        drifted = sorted(
            name
            for name, ours in (("email", account.email), ("name", account.name))
            if ours is not None and event.details.get(name) != ours
        )
        if not drifted:
            return False
        provider_name = event.provider
        provider = provider_for(self._providers, provider_name)
        try:
            provider.update_customer(customer_id, account.email, account.name)
        except ProviderUnavailable as exc:
            # Not recorded: the provider delivers the event again and we try again.
            raise errors.PaymentProviderUnavailable(
                f"could not restore the customer at {provider_name}"
            ) from exc
        except ProviderRejected as exc:
            log.error(
                "provider-side customer edit could not be overwritten",
                extra={"fields": {"provider": provider_name, "customer": customer_id}},
            )
            log.debug("provider refusal", exc_info=exc)
            return False
        log.warning(
            "provider-side customer edit overwritten with the profile",
            extra={
                "fields": {
                    "provider": provider_name,
                    "customer": customer_id,
                    "fields": ",".join(drifted),
                }
            },
        )
        return True

"""Payment events dispatch through a table: one handler per event kind, none missing."""

from __future__ import annotations

from datetime import UTC, datetime

from atelier_billing.application.payments.notifications import event_handlers
from atelier_billing.application.ports import PaymentEvent, PaymentEventKind
from atelier_billing.application.use_cases import BillingUseCases
from tests.billing.conftest import make_config
from tests.billing.fakes import FakeStore
from tests.support.fakes import FakeIds


def test_every_payment_event_kind_has_its_handler() -> None:
    assert set(event_handlers(FakeIds(), make_config())) == set(PaymentEventKind)


def test_an_ignored_event_is_recorded_once_and_changes_nothing(
    service: BillingUseCases, store: FakeStore
) -> None:
    event = PaymentEvent(
        provider="fake",
        event_id="evt_ignored",
        kind=PaymentEventKind.IGNORED,
        occurred_at=datetime(2026, 11, 1, tzinfo=UTC),
    )
    first = service.apply_payment_event(event)
    again = service.apply_payment_event(event)
    assert (first.applied, again.applied) == (False, False)
    with store() as uow:
        assert uow.payment_events.seen("fake", "evt_ignored")

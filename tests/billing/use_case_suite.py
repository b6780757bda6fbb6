"""The billing use cases, written once and run on two units of work: the Fake* ports
(``tests/billing/unit/test_use_cases.py``) and the real repository on SQLite and PostgreSQL
(``tests/billing/integration/test_use_cases_on_databases.py``). Each module picks the ``store``
fixture (a ``BillingUnitOfWorkFactory``); the tests see only the port."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from atelier_billing.application.account_activity import (
    Activity,
    GetAccount,
    ListAccountActivity,
)
from atelier_billing.application.accounts import GetBalance, ListLedger, SetUpAccount
from atelier_billing.application.adjustments import AdjustCredits
from atelier_billing.application.holds import CaptureHold, HoldCredits, ReleaseHold
from atelier_billing.application.orders import CreateOrder, GetOrder, ListOrders
from atelier_billing.application.payments.notifications import HandleNotification
from atelier_billing.application.ports import (
    BillingUnitOfWorkFactory,
    PaymentEvent,
    PaymentEventKind,
    PaymentState,
    PaymentStatusReport,
)
from atelier_billing.application.reconcile import ReconcilePendingOrders, RefreshOrder
from atelier_billing.application.refund_order import RefundOrder
from atelier_billing.application.use_cases import BillingUseCases, build_use_cases
from atelier_billing.domain import errors
from atelier_billing.domain.model import GrantSource, HoldStatus, LedgerKind, OrderStatus
from atelier_ports import problems
from atelier_ports.clock import Clock
from atelier_ports.errors import ProviderRejected, ProviderUnavailable
from tests.billing.fakes import FakePaymentProvider
from tests.support.fakes import FakeClock, FakeIds


def paid_event(
    order_id: str, amount: int, event_id: str = "evt_1", currency: str = "USD"
) -> PaymentEvent:
    return PaymentEvent(
        provider="fake",
        event_id=event_id,
        kind=PaymentEventKind.PAYMENT_SUCCEEDED,
        occurred_at=FakeClock().now(),
        order_id=order_id,
        transaction_id=f"txn_{event_id}",
        amount=amount,
        currency=currency,
    )


def test_signup_bonus_is_granted_once(
    service: BillingUseCases, store: BillingUnitOfWorkFactory
) -> None:
    first = service.set_up_account(SetUpAccount("u1"))
    again = service.set_up_account(SetUpAccount("u1"))
    assert (first.balance.available, first.created) == (10, True)
    assert (again.balance.available, again.created) == (10, False)
    assert [g.source for g in again.balance.grants] == [GrantSource.SIGNUP_BONUS]


def test_hold_capture_release_move_credits(service: BillingUseCases) -> None:
    service.set_up_account(SetUpAccount("u1"))
    service.hold_credits(HoldCredits("u1", "t1", 4, "task:t1"))
    service.hold_credits(HoldCredits("u1", "t2", 3, "task:t2"))
    assert (
        service.get_balance(GetBalance("u1")).available,
        service.get_balance(GetBalance("u1")).held,
    ) == (3, 7)
    service.capture_hold(CaptureHold("u1", "t1"))
    service.release_hold(ReleaseHold("u1", "t2"))
    balance = service.get_balance(GetBalance("u1"))
    assert (balance.available, balance.held) == (6, 0)
    kinds = [e.kind for e in service.list_ledger(ListLedger("u1", 0, "")).items]
    assert kinds == [
        LedgerKind.RELEASE,
        LedgerKind.CAPTURE,
        LedgerKind.HOLD,
        LedgerKind.HOLD,
        LedgerKind.GRANT,
    ]
    assert all(check.ok for check in service.check_ledger())


def test_insufficient_credits_change_nothing(service: BillingUseCases) -> None:
    service.set_up_account(SetUpAccount("u1"))
    with pytest.raises(errors.InsufficientCredits):
        service.hold_credits(HoldCredits("u1", "t1", 11, ""))
    assert service.get_balance(GetBalance("u1")).available == 10
    assert len(service.list_ledger(ListLedger("u1", 0, "")).items) == 1


def test_repeated_hold_is_one_effect_and_conflicting_reuse_is_refused(
    service: BillingUseCases,
) -> None:
    service.set_up_account(SetUpAccount("u1"))
    first = service.hold_credits(HoldCredits("u1", "t1", 2, ""))
    for _ in range(5):
        assert service.hold_credits(HoldCredits("u1", "t1", 2, "")).id == first.id
    assert service.get_balance(GetBalance("u1")).available == 8
    with pytest.raises(errors.IdempotencyConflict):
        service.hold_credits(HoldCredits("u1", "t1", 3, ""))


def test_capture_after_release_and_release_after_capture_are_refused(
    service: BillingUseCases,
) -> None:
    service.set_up_account(SetUpAccount("u1"))
    service.hold_credits(HoldCredits("u1", "a", 1, ""))
    service.hold_credits(HoldCredits("u1", "b", 1, ""))
    service.release_hold(ReleaseHold("u1", "a"))
    service.capture_hold(CaptureHold("u1", "b"))
    with pytest.raises(errors.HoldAlreadyReleased):
        service.capture_hold(CaptureHold("u1", "a"))
    with pytest.raises(errors.HoldAlreadyCaptured):
        service.release_hold(ReleaseHold("u1", "b"))
    assert (
        service.release_hold(ReleaseHold("u1", "a")).status is HoldStatus.RELEASED
    )  # repeat: fine
    balance = service.get_balance(GetBalance("u1"))
    assert (balance.available, balance.held) == (9, 0)


def test_unknown_hold_is_not_found(service: BillingUseCases) -> None:
    service.set_up_account(SetUpAccount("u1"))
    with pytest.raises(errors.HoldNotFound):
        service.capture_hold(CaptureHold("u1", "nope"))


def test_holds_are_scoped_to_their_user(service: BillingUseCases) -> None:
    service.set_up_account(SetUpAccount("a"))
    service.set_up_account(SetUpAccount("b"))
    service.hold_credits(HoldCredits("a", "t1", 1, ""))
    with pytest.raises(errors.HoldNotFound):
        service.release_hold(ReleaseHold("b", "t1"))


def test_release_into_an_expired_grant_is_regranted_with_grace(
    store: BillingUnitOfWorkFactory, clock: FakeClock, provider: FakePaymentProvider
) -> None:
    from tests.billing.conftest import make_config

    svc = build_use_cases(
        uow=store,
        clock=clock,
        ids=FakeIds(),
        config=make_config(signup_bonus_validity=timedelta(days=1)),
        providers={"fake": provider},
    )
    svc.set_up_account(SetUpAccount("u1"))
    svc.hold_credits(HoldCredits("u1", "t1", 4, "task:t1"))
    clock.advance(days=2)
    report = svc.run_expiry()
    assert (report.expired_grants, report.expired_credits) == (1, 6)
    svc.release_hold(ReleaseHold("u1", "t1"))
    balance = svc.get_balance(GetBalance("u1"))
    assert balance.available == 4
    [grace] = balance.grants
    assert grace.source is GrantSource.GRACE
    assert grace.expires_at == clock.now() + timedelta(days=7)
    assert all(check.ok for check in svc.check_ledger())


def _bonus_expiring_in_a_day(
    store: BillingUnitOfWorkFactory, clock: FakeClock, provider: FakePaymentProvider
) -> BillingUseCases:
    from tests.billing.conftest import make_config

    return build_use_cases(
        uow=store,
        clock=clock,
        ids=FakeIds(),
        config=make_config(signup_bonus_validity=timedelta(days=1)),
        providers={"fake": provider},
    )


def test_a_repeated_hold_is_answered_identically(service: BillingUseCases, clock: Clock) -> None:
    service.set_up_account(SetUpAccount("u1"))  # 10, never expires
    service.adjust_credits(
        AdjustCredits(True, "u1", 5, "extra", "g1", clock.now() + timedelta(days=2))
    )
    first = service.hold_credits(HoldCredits("u1", "t1", 7, "task:t1"))
    assert [part.amount for part in first.allocations] == [5, 2]  # soonest-expiring first
    for _ in range(3):
        assert service.hold_credits(HoldCredits("u1", "t1", 7, "another reference")) == first
    balance = service.get_balance(GetBalance("u1"))
    assert (balance.available, balance.held) == (8, 7)
    assert len(service.list_ledger(ListLedger("u1", 0, "")).items) == 3  # 2 grants, 1 hold


def test_a_hold_without_an_account_is_refused(service: BillingUseCases) -> None:
    with pytest.raises(errors.AccountNotFound):
        service.hold_credits(HoldCredits("nobody", "t1", 1, ""))


def test_an_expired_grant_is_never_spent_before_the_expiry_job_runs(
    store: BillingUnitOfWorkFactory, clock: FakeClock, provider: FakePaymentProvider
) -> None:
    svc = _bonus_expiring_in_a_day(store, clock, provider)
    svc.set_up_account(SetUpAccount("u1"))  # 10, expires in a day
    svc.adjust_credits(AdjustCredits(True, "u1", 5, "extra", "g1"))  # never expires
    clock.advance(days=2)  # the bonus has expired; the expiry job has not run
    with pytest.raises(errors.InsufficientCredits):
        svc.hold_credits(HoldCredits("u1", "t1", 6, ""))
    assert len(svc.list_ledger(ListLedger("u1", 0, "")).items) == 2  # the refusal wrote nothing
    hold = svc.hold_credits(HoldCredits("u1", "t2", 5, ""))
    assert [part.amount for part in hold.allocations] == [5]  # all from the live grant
    balance = svc.get_balance(GetBalance("u1"))
    assert (balance.available, balance.held) == (0, 5)
    report = svc.run_expiry()
    assert (report.expired_grants, report.expired_credits) == (1, 10)  # the bonus, untouched
    assert all(check.ok for check in svc.check_ledger())


def test_a_release_after_its_grant_expired_but_before_the_sweep_is_regranted_with_grace(
    store: BillingUnitOfWorkFactory, clock: FakeClock, provider: FakePaymentProvider
) -> None:
    svc = _bonus_expiring_in_a_day(store, clock, provider)
    svc.set_up_account(SetUpAccount("u1"))
    svc.hold_credits(HoldCredits("u1", "t1", 4, "task:t1"))
    clock.advance(days=2)  # the bonus (6 left) has expired; the expiry job has not run
    released = svc.release_hold(ReleaseHold("u1", "t1"))
    assert svc.release_hold(ReleaseHold("u1", "t1")) == released
    balance = svc.get_balance(GetBalance("u1"))
    [grace] = balance.grants
    assert (grace.source, grace.remaining) == (GrantSource.GRACE, 4)
    assert grace.reference == "returned from task:t1"
    assert grace.expires_at == clock.now() + timedelta(days=7)
    report = svc.run_expiry()
    assert (report.expired_grants, report.expired_credits) == (1, 6)  # not the returned 4
    assert svc.get_balance(GetBalance("u1")).available == 4
    assert all(check.ok for check in svc.check_ledger())


def test_repeated_capture_and_release_are_answered_identically_with_one_effect(
    service: BillingUseCases,
) -> None:
    service.set_up_account(SetUpAccount("u1"))
    service.hold_credits(HoldCredits("u1", "a", 3, ""))
    service.hold_credits(HoldCredits("u1", "b", 2, ""))
    captured = service.capture_hold(CaptureHold("u1", "a"))
    released = service.release_hold(ReleaseHold("u1", "b"))
    assert (captured.status, released.status) == (HoldStatus.CAPTURED, HoldStatus.RELEASED)
    for _ in range(3):
        assert service.capture_hold(CaptureHold("u1", "a")) == captured
        assert service.release_hold(ReleaseHold("u1", "b")) == released
    balance = service.get_balance(GetBalance("u1"))
    assert (balance.available, balance.held) == (7, 0)
    assert [g.remaining for g in balance.grants] == [7]  # the release went back to its grant
    kinds = [e.kind for e in service.list_ledger(ListLedger("u1", 0, "")).items]
    assert kinds == [
        LedgerKind.RELEASE,
        LedgerKind.CAPTURE,
        LedgerKind.HOLD,
        LedgerKind.HOLD,
        LedgerKind.GRANT,
    ]
    assert all(check.ok for check in service.check_ledger())


def test_admin_adjustment_requires_admin_and_a_reason(service: BillingUseCases) -> None:
    service.set_up_account(SetUpAccount("u1"))
    with pytest.raises(problems.PermissionDenied):
        service.adjust_credits(AdjustCredits(False, "u1", 5, "gift", "r1", None))
    with pytest.raises(problems.InvalidArgument):
        service.adjust_credits(AdjustCredits(True, "u1", 5, "  ", "r1", None))
    service.adjust_credits(AdjustCredits(True, "u1", 5, "gift", "r1", None))
    service.adjust_credits(AdjustCredits(True, "u1", 5, "gift", "r1", None))  # repeat: one effect
    assert service.get_balance(GetBalance("u1")).available == 15
    service.adjust_credits(AdjustCredits(True, "u1", -12, "chargeback", "r2", None))
    assert service.get_balance(GetBalance("u1")).available == 3
    with pytest.raises(errors.InsufficientCredits):
        service.adjust_credits(AdjustCredits(True, "u1", -4, "too much", "r3", None))
    [entry, *_] = service.list_ledger(ListLedger("u1", 0, "")).items
    assert (entry.kind, entry.amount, entry.reason) == (LedgerKind.ADJUST, -12, "chargeback")


def test_order_prices_come_from_the_catalog(
    service: BillingUseCases, provider: FakePaymentProvider
) -> None:
    service.set_up_account(SetUpAccount("u1"))
    order = service.create_order(CreateOrder("u1", "pack_100", "fake", ""))
    assert (order.amount, order.currency, order.status) == (999, "USD", OrderStatus.PENDING)
    assert order.checkout_url == f"https://pay/{order.id}"
    assert provider.checkouts[0].amount == 999
    with pytest.raises(errors.CatalogItemNotFound):
        service.create_order(CreateOrder("u1", "pack_free", "fake", ""))
    with pytest.raises(errors.ChannelNotAvailable):
        service.create_order(CreateOrder("u1", "pack_100", "stripe", ""))


def test_order_request_id_is_idempotent(service: BillingUseCases) -> None:
    service.set_up_account(SetUpAccount("u1"))
    first = service.create_order(CreateOrder("u1", "pack_100", "fake", "k1"))
    assert service.create_order(CreateOrder("u1", "pack_100", "fake", "k1")).id == first.id
    with pytest.raises(errors.IdempotencyConflict):
        service.create_order(CreateOrder("u1", "pack_500", "fake", "k1"))


def test_membership_payment_activates_and_grants_quota_once(
    service: BillingUseCases, provider: FakePaymentProvider, clock: Clock
) -> None:
    service.set_up_account(SetUpAccount("u1"))
    order = service.create_order(CreateOrder("u1", "plan_monthly", "fake", ""))
    provider.events[b"paid"] = paid_event(order.id, order.amount)
    assert service.handle_notification(HandleNotification("fake", {"sig": "ok"}, b"paid")).applied
    assert not service.handle_notification(
        HandleNotification("fake", {"sig": "ok"}, b"paid")
    ).applied
    balance = service.get_balance(GetBalance("u1"))
    assert balance.available == 10 + 300
    assert balance.membership is not None and balance.membership.is_active(clock.now())
    assert balance.quota_left == 300
    assert service.get_order(GetOrder("u1", order.id)).status is OrderStatus.PAID


def test_forged_or_mismatched_notifications_change_nothing(
    service: BillingUseCases, provider: FakePaymentProvider
) -> None:
    service.set_up_account(SetUpAccount("u1"))
    order = service.create_order(CreateOrder("u1", "pack_100", "fake", ""))
    provider.events[b"cheap"] = paid_event(order.id, 1, "evt_cheap")
    provider.events[b"ghost"] = paid_event("ord_ghost", 999, "evt_ghost")
    with pytest.raises(errors.InvalidSignature):
        service.handle_notification(HandleNotification("fake", {"sig": "forged"}, b"cheap"))
    with pytest.raises(errors.PaymentAmountMismatch):
        service.handle_notification(HandleNotification("fake", {"sig": "ok"}, b"cheap"))
    with pytest.raises(errors.OrderNotFound):
        service.handle_notification(HandleNotification("fake", {"sig": "ok"}, b"ghost"))
    with pytest.raises(errors.UnknownProvider):
        service.handle_notification(HandleNotification("paypal", {"sig": "ok"}, b"cheap"))
    assert service.get_order(GetOrder("u1", order.id)).status is OrderStatus.PENDING
    assert service.get_balance(GetBalance("u1")).available == 10


def test_refresh_recovers_a_lost_webhook(
    service: BillingUseCases, provider: FakePaymentProvider
) -> None:
    service.set_up_account(SetUpAccount("u1"))
    order = service.create_order(CreateOrder("u1", "pack_100", "fake", ""))
    assert service.refresh_order(RefreshOrder("u1", order.id)).status is OrderStatus.PENDING
    provider.states[order.id] = PaymentStatusReport(
        state=PaymentState.PAID, transaction_id="txn", amount=999, currency="USD"
    )
    assert service.refresh_order(RefreshOrder("u1", order.id)).status is OrderStatus.PAID
    assert service.refresh_order(RefreshOrder("u1", order.id)).status is OrderStatus.PAID
    assert service.get_balance(GetBalance("u1")).available == 110


def test_orders_of_other_users_are_not_found(service: BillingUseCases) -> None:
    service.set_up_account(SetUpAccount("a"))
    service.set_up_account(SetUpAccount("b"))
    order = service.create_order(CreateOrder("a", "pack_100", "fake", ""))
    with pytest.raises(errors.OrderNotFound):
        service.get_order(GetOrder("b", order.id))
    assert service.list_orders(ListOrders("b", 0, "")).items == []


def test_pending_orders_and_memberships_expire(
    service: BillingUseCases, provider: FakePaymentProvider, clock: FakeClock
) -> None:
    service.set_up_account(SetUpAccount("u1"))
    pending = service.create_order(CreateOrder("u1", "pack_100", "fake", ""))
    plan = service.create_order(CreateOrder("u1", "plan_monthly", "fake", ""))
    provider.events[b"p"] = paid_event(plan.id, plan.amount)
    service.handle_notification(HandleNotification("fake", {"sig": "ok"}, b"p"))
    clock.advance(minutes=31)
    assert service.run_expiry().expired_orders == 1
    assert service.get_order(GetOrder("u1", pending.id)).status is OrderStatus.EXPIRED
    assert provider.closed == [pending.id]  # closed at the provider too
    clock.advance(days=30)
    report = service.run_expiry()
    assert (report.expired_memberships, report.expired_credits) == (1, 300)
    balance = service.get_balance(GetBalance("u1"))
    assert balance.available == 10 and balance.quota_left == 0


def test_ledger_pages(service: BillingUseCases) -> None:
    service.set_up_account(SetUpAccount("u1"))
    for i in range(5):
        service.hold_credits(HoldCredits("u1", f"t{i}", 1, ""))
    first = service.list_ledger(ListLedger("u1", 4, ""))
    second = service.list_ledger(ListLedger("u1", 4, first.next_token))
    assert len(first.items) == 4 and first.next_token
    assert len(second.items) == 2 and second.next_token == ""
    ids = [e.id for e in [*first.items, *second.items]]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == 6


def subscription_event(kind: PaymentEventKind, event_id: str, **fields: object) -> PaymentEvent:
    return PaymentEvent(
        provider="fake",
        event_id=event_id,
        kind=kind,
        occurred_at=FakeClock().now(),
        **fields,  # type: ignore[arg-type]
    )


def buy_membership(service: BillingUseCases, provider: FakePaymentProvider) -> str:
    service.set_up_account(SetUpAccount("u1"))
    order = service.create_order(CreateOrder("u1", "plan_monthly", "fake", ""))
    provider.events[b"paid"] = PaymentEvent(
        provider="fake",
        event_id="evt_paid",
        kind=PaymentEventKind.PAYMENT_SUCCEEDED,
        occurred_at=FakeClock().now(),
        order_id=order.id,
        transaction_id="sub_1_first",
        amount=order.amount,
        currency="USD",
        subscription_id="sub_1",
    )
    service.handle_notification(HandleNotification("fake", {"sig": "ok"}, b"paid"))
    return order.id


def deliver(service: BillingUseCases, provider: FakePaymentProvider, event: PaymentEvent) -> bool:
    provider.events[event.event_id.encode()] = event
    return service.handle_notification(
        HandleNotification("fake", {"sig": "ok"}, event.event_id.encode())
    ).applied


def test_renewals_grant_the_next_period_once_per_invoice(
    service: BillingUseCases, provider: FakePaymentProvider, clock: FakeClock
) -> None:
    buy_membership(service, provider)
    first_end = service.get_balance(GetBalance("u1")).membership.period_end  # type: ignore[union-attr]
    renewal = subscription_event(
        PaymentEventKind.SUBSCRIPTION_RENEWED,
        "evt_r1",
        subscription_id="sub_1",
        transaction_id="in_2",
        amount=1999,
        currency="USD",
    )
    again = replace(renewal, event_id="evt_r1_redelivered")
    assert deliver(service, provider, renewal)
    assert not deliver(service, provider, again)  # another event for the same invoice
    balance = service.get_balance(GetBalance("u1"))
    assert balance.available == 10 + 300 + 300
    assert balance.membership is not None
    assert balance.membership.period_end == first_end + timedelta(days=30)


def test_a_renewal_before_its_checkout_is_refused_for_redelivery(
    service: BillingUseCases, provider: FakePaymentProvider
) -> None:
    service.set_up_account(SetUpAccount("u1"))
    early = subscription_event(
        PaymentEventKind.SUBSCRIPTION_RENEWED,
        "evt_early",
        subscription_id="sub_9",
        transaction_id="in_9",
    )
    with pytest.raises(errors.SubscriptionNotYetKnown):
        deliver(service, provider, early)
    assert service.get_balance(GetBalance("u1")).available == 10


def test_subscription_cancellation_is_final(
    service: BillingUseCases, provider: FakePaymentProvider
) -> None:
    buy_membership(service, provider)
    at_end = subscription_event(
        PaymentEventKind.SUBSCRIPTION_UPDATED,
        "evt_u1",
        subscription_id="sub_1",
        details={"cancel_at_period_end": "true"},
    )
    assert deliver(service, provider, at_end)
    assert service.get_balance(GetBalance("u1")).membership.cancel_at_period_end  # type: ignore[union-attr]
    assert deliver(
        service,
        provider,
        subscription_event(
            PaymentEventKind.SUBSCRIPTION_CANCELED, "evt_d", subscription_id="sub_1"
        ),
    )
    late_update = subscription_event(
        PaymentEventKind.SUBSCRIPTION_UPDATED,
        "evt_u0",
        subscription_id="sub_1",
        details={"cancel_at_period_end": "false"},
    )
    assert not deliver(service, provider, late_update)  # out of order: changes nothing
    membership = service.get_balance(GetBalance("u1")).membership
    assert membership is not None and membership.status.value == "canceled"


def test_refund_takes_back_only_the_unspent_credits(
    service: BillingUseCases, provider: FakePaymentProvider
) -> None:
    service.set_up_account(SetUpAccount("u1"))
    order = service.create_order(CreateOrder("u1", "pack_100", "fake", ""))
    provider.events[b"p"] = paid_event(order.id, order.amount, "evt_p")
    service.handle_notification(HandleNotification("fake", {"sig": "ok"}, b"p"))
    service.hold_credits(
        HoldCredits("u1", "t1", 15, "")
    )  # from the pack: it expires, the bonus never does
    service.capture_hold(CaptureHold("u1", "t1"))
    refund = subscription_event(
        PaymentEventKind.REFUNDED,
        "evt_refund",
        transaction_id="txn_evt_p",
        amount=999,
        currency="USD",
    )
    assert deliver(service, provider, refund)
    assert not deliver(service, provider, replace(refund, event_id="evt_refund_2"))
    assert service.get_order(GetOrder("u1", order.id)).status is OrderStatus.REFUNDED
    assert (
        service.get_balance(GetBalance("u1")).available == 10
    )  # the 85 unspent pack credits went back
    [clawback, *_] = service.list_ledger(ListLedger("u1", 0, "")).items
    assert (clawback.kind, clawback.amount) == (LedgerKind.ADJUST, -85)
    assert all(check.ok for check in service.check_ledger())


def test_the_periodic_sweep_reconciles_orders_pending_for_a_while(
    service: BillingUseCases, provider: FakePaymentProvider, clock: FakeClock
) -> None:
    service.set_up_account(SetUpAccount("u1"))
    old = service.create_order(CreateOrder("u1", "pack_100", "fake", ""))
    clock.advance(minutes=5)
    young = service.create_order(CreateOrder("u1", "pack_500", "fake", ""))
    for order in (old, young):
        provider.states[order.id] = PaymentStatusReport(
            state=PaymentState.PAID,
            transaction_id=f"txn_{order.id}",
            amount=order.amount,
            currency="USD",
        )
    assert service.reconcile_pending_orders(ReconcilePendingOrders(timedelta(minutes=3))) == 1
    assert service.get_order(GetOrder("u1", old.id)).status is OrderStatus.PAID
    assert service.get_order(GetOrder("u1", young.id)).status is OrderStatus.PENDING
    assert service.get_balance(GetBalance("u1")).available == 110


def test_an_order_number_clash_retries_with_a_new_number(
    store: BillingUnitOfWorkFactory, clock: FakeClock, provider: FakePaymentProvider
) -> None:
    from tests.billing.conftest import make_config

    class RepeatingIds(FakeIds):
        """Hands out the same readable code twice before moving on."""

        def __init__(self) -> None:
            super().__init__()
            self.codes = iter(["AAAAAA", "AAAAAA", "BBBBBB"])

        def readable_code(self, length: int) -> str:
            return next(self.codes)

    svc = build_use_cases(
        uow=store,
        clock=clock,
        ids=RepeatingIds(),
        config=make_config(),
        providers={"fake": provider},
    )
    svc.set_up_account(SetUpAccount("u1"))
    first = svc.create_order(CreateOrder("u1", "pack_100", "fake", ""))
    second = svc.create_order(CreateOrder("u1", "pack_100", "fake", ""))
    assert first.number.endswith("-AAAAAA") and second.number.endswith("-BBBBBB")
    assert svc.get_order(GetOrder("u1", second.id)).number == second.number


@pytest.mark.parametrize(
    ("email", "name", "field"),
    [
        ("not-an-address", None, "email"),
        ("a@" + "x" * 330, None, "email"),
        (None, "n" * 201, "name"),
    ],
)
def test_bad_contact_details_are_refused_and_change_nothing(
    service: BillingUseCases, email: str | None, name: str | None, field: str
) -> None:
    with pytest.raises(problems.InvalidArgument) as info:
        service.set_up_account(SetUpAccount("u1", email, name))
    assert info.value.field == field
    with pytest.raises(errors.AccountNotFound):
        service.get_balance(GetBalance("u1"))


def test_a_rolled_back_unit_of_work_leaves_nothing_and_its_transaction_is_over(
    store: BillingUnitOfWorkFactory, clock: FakeClock
) -> None:
    with store() as uow:
        uow.accounts.create("u1", clock.now())
        uow.rollback()
    with store() as uow:
        assert uow.accounts.get("u1") is None
        uow.accounts.create("u1", clock.now())
        uow.commit()
    with store() as uow:
        assert uow.accounts.get("u1") is not None


def test_a_unit_of_work_left_without_commit_is_rolled_back(
    store: BillingUnitOfWorkFactory, clock: FakeClock
) -> None:
    with store() as uow:
        uow.accounts.create("u1", clock.now())
    with store() as uow:
        assert uow.accounts.get("u1") is None


def test_an_order_is_expired_even_when_its_provider_cannot_close_it(
    service: BillingUseCases, provider: FakePaymentProvider, clock: FakeClock
) -> None:
    service.set_up_account(SetUpAccount("u1"))
    order = service.create_order(CreateOrder("u1", "pack_100", "fake", ""))
    provider.error = ProviderUnavailable("down")
    clock.advance(minutes=31)
    assert service.run_expiry().expired_orders == 1
    assert service.get_order(GetOrder("u1", order.id)).status is OrderStatus.EXPIRED


def _paid_pack(service: BillingUseCases, provider: FakePaymentProvider) -> str:
    service.set_up_account(SetUpAccount("u1"))
    order = service.create_order(CreateOrder("u1", "pack_100", "fake", ""))
    provider.events[b"paid"] = paid_event(order.id, order.amount)
    service.handle_notification(HandleNotification("fake", {"sig": "ok"}, b"paid"))
    return order.id


def test_an_admin_refund_claws_back_the_unspent_credits_once(
    service: BillingUseCases, provider: FakePaymentProvider
) -> None:
    order_id = _paid_pack(service, provider)
    service.hold_credits(HoldCredits("u1", "t1", 30, "task:t1"))
    service.capture_hold(CaptureHold("u1", "t1"))
    with pytest.raises(errors.AdminOnly):
        service.refund_order(RefundOrder(False, order_id, "no"))
    refunded = service.refund_order(RefundOrder(True, order_id, "charged twice"))
    again = service.refund_order(RefundOrder(True, order_id, "charged twice"))
    assert refunded.status is again.status is OrderStatus.REFUNDED
    number = service.get_order(GetOrder("u1", order_id)).number
    assert provider.refunds == {f"RF-{number}": (order_id, 999)}
    # 100 bought, 30 spent from the pack (it expires before the bonus): 70 taken back
    assert service.get_balance(GetBalance("u1")).available == 10
    assert all(check.ok for check in service.check_ledger())
    # the provider's own notification of that refund changes nothing more
    assert not deliver(
        service,
        provider,
        subscription_event(
            PaymentEventKind.REFUNDED,
            "evt_refund_echo",
            transaction_id="txn_evt_1",
            amount=999,
            currency="USD",
        ),
    )
    assert service.get_balance(GetBalance("u1")).available == 10


def test_only_paid_orders_are_refunded_and_provider_trouble_changes_nothing(
    service: BillingUseCases, provider: FakePaymentProvider
) -> None:
    service.set_up_account(SetUpAccount("u1"))
    pending = service.create_order(CreateOrder("u1", "pack_100", "fake", ""))
    with pytest.raises(errors.OrderNotRefundable):
        service.refund_order(RefundOrder(True, pending.id))
    with pytest.raises(errors.OrderNotFound):
        service.refund_order(RefundOrder(True, "ord_nosuch"))
    with pytest.raises(problems.InvalidArgument):
        service.refund_order(RefundOrder(True, pending.id, "x" * 501))
    provider.events[b"paid"] = paid_event(pending.id, pending.amount)
    service.handle_notification(HandleNotification("fake", {"sig": "ok"}, b"paid"))
    for trouble, expected in (
        (ProviderUnavailable("down"), errors.PaymentProviderUnavailable),
        (ProviderRejected("no"), errors.PaymentProviderRejected),
    ):
        provider.error = trouble
        with pytest.raises(expected):
            service.refund_order(RefundOrder(True, pending.id))
    assert service.get_order(GetOrder("u1", pending.id)).status is OrderStatus.PAID
    assert service.get_balance(GetBalance("u1")).available == 110


def test_an_admin_refund_of_a_membership_ends_it_and_its_renewals(
    service: BillingUseCases, provider: FakePaymentProvider, clock: FakeClock
) -> None:
    order_id = buy_membership(service, provider)
    service.refund_order(RefundOrder(True, order_id, "unhappy"))
    assert provider.canceled == ["sub_1"]
    balance = service.get_balance(GetBalance("u1"))
    assert balance.membership is not None and not balance.membership.is_active(clock.now())
    assert balance.available == 10 and balance.quota_left == 0
    assert all(check.ok for check in service.check_ledger())


def test_a_refund_before_its_payment_is_refused_unrecorded(
    service: BillingUseCases, provider: FakePaymentProvider
) -> None:
    service.set_up_account(SetUpAccount("u1"))
    order = service.create_order(CreateOrder("u1", "pack_100", "fake", ""))
    early = subscription_event(
        PaymentEventKind.REFUNDED, "evt_early_refund", order_id=order.id, amount=999
    )
    with pytest.raises(errors.RefundBeforePayment):
        deliver(service, provider, early)
    provider.events[b"paid"] = paid_event(order.id, order.amount)
    service.handle_notification(HandleNotification("fake", {"sig": "ok"}, b"paid"))
    assert deliver(service, provider, early)  # delivered again: now it applies
    assert service.get_order(GetOrder("u1", order.id)).status is OrderStatus.REFUNDED
    assert service.get_balance(GetBalance("u1")).available == 10


def test_an_event_naming_another_order_number_never_pays_and_is_recorded(
    service: BillingUseCases, provider: FakePaymentProvider, store: BillingUnitOfWorkFactory
) -> None:
    service.set_up_account(SetUpAccount("u1"))
    order = service.create_order(CreateOrder("u1", "pack_100", "fake", ""))
    wrong = replace(paid_event(order.id, order.amount), details={"order_number": "AT-1-OTHER"})
    with pytest.raises(errors.PaymentOrderMismatch):
        deliver(service, provider, wrong)
    with pytest.raises(errors.PaymentOrderMismatch):
        deliver(service, provider, wrong)  # refused again; recorded once
    with store() as uow:
        assert uow.payment_events.seen("fake", "refused:evt_1")
        assert not uow.payment_events.seen("fake", "evt_1")
    assert service.get_order(GetOrder("u1", order.id)).status is OrderStatus.PENDING
    right = replace(wrong, details={"order_number": order.number})
    assert deliver(service, provider, right)
    assert service.get_balance(GetBalance("u1")).available == 110


def test_an_event_for_another_payee_never_applies_and_is_recorded(
    service: BillingUseCases, provider: FakePaymentProvider, store: BillingUnitOfWorkFactory
) -> None:
    service.set_up_account(SetUpAccount("u1"))
    order = service.create_order(CreateOrder("u1", "pack_100", "fake", ""))
    foreign = replace(paid_event(order.id, order.amount), details={"payee_mismatch": "mchid"})
    with pytest.raises(errors.PaymentPayeeMismatch):
        deliver(service, provider, foreign)
    with store() as uow:
        assert uow.payment_events.seen("fake", "refused:evt_1")
    assert service.get_order(GetOrder("u1", order.id)).status is OrderStatus.PENDING
    assert service.get_balance(GetBalance("u1")).available == 10


def _activity(service: BillingUseCases, size: int) -> list[Activity]:
    """Every activity entry of u1, walking the listing ``size`` entries at a time."""
    seen: list[Activity] = []
    token = ""
    while True:
        page = service.list_account_activity(ListAccountActivity(True, "u1", size, token))
        assert len(page.items) <= size
        seen += page.items
        if not page.next_token:
            return seen
        token = page.next_token


def test_account_activity_lists_ledger_payments_and_refunds_with_their_causes(
    service: BillingUseCases, provider: FakePaymentProvider, clock: FakeClock
) -> None:
    order_id = _paid_pack(service, provider)  # bonus and payment at one instant: ties
    service.hold_credits(HoldCredits("u1", "t1", 30, "task:t1"))
    service.capture_hold(CaptureHold("u1", "t1"))
    clock.advance(seconds=1)
    service.hold_credits(HoldCredits("u1", "t2", 5, "task:t2"))
    service.release_hold(ReleaseHold("u1", "t2"))
    service.adjust_credits(AdjustCredits(True, "u1", 3, "goodwill", "adj-1", None))
    clock.advance(seconds=1)
    service.refund_order(RefundOrder(True, order_id, "charged twice"))

    everything = _activity(service, 100)
    kinds = [a.ledger_entry.kind.value if a.ledger_entry else a.kind for a in everything]
    assert kinds.count("payment") == kinds.count("refund") == 1
    assert {"grant", "hold", "capture", "release", "adjust"} <= set(kinds)
    # newest first by time; each id once; a walk one entry at a time sees the very same list
    assert [a.at for a in everything] == sorted((a.at for a in everything), reverse=True)
    assert len({a.id for a in everything}) == len(everything)
    for size in (1, 2, 3):
        assert [a.id for a in _activity(service, size)] == [a.id for a in everything]
    causes = {
        (a.id.split(":")[0], kind, a.cause, a.cause_id)
        for a, kind in zip(everything, kinds, strict=True)
    }
    assert ("ledger", "capture", "task", "t1") in causes
    assert ("ledger", "release", "task", "t2") in causes
    assert ("payment", "payment", "order", order_id) in causes
    assert ("refund", "refund", "order", order_id) in causes
    assert ("ledger", "adjust", "admin", "") in causes
    grants = {
        (a.cause, a.cause_id) for a, kind in zip(everything, kinds, strict=True) if kind == "grant"
    }
    assert grants == {("signup", ""), ("order", order_id)}
    # another page's token, or a forged one, is refused
    with pytest.raises(problems.InvalidArgument):
        service.list_account_activity(ListAccountActivity(True, "u1", 1, "bm90IGEgdG9rZW4"))
    ledger_token = service.list_ledger(ListLedger("u1", 1, "")).next_token
    with pytest.raises(problems.InvalidArgument):
        service.list_account_activity(ListAccountActivity(True, "u1", 1, ledger_token))


def test_only_admins_read_another_users_account(
    service: BillingUseCases, provider: FakePaymentProvider
) -> None:
    order_id = _paid_pack(service, provider)
    with pytest.raises(errors.AdminOnly):
        service.get_account(GetAccount(False, "u1", 5))
    with pytest.raises(errors.AdminOnly):
        service.list_account_activity(ListAccountActivity(False, "u1", 5, ""))
    account = service.get_account(GetAccount(True, "u1", 5))
    assert account.balance.available == 110
    assert [o.id for o in account.recent_orders] == [order_id]
    with pytest.raises(errors.AccountNotFound):
        service.get_account(GetAccount(True, "nobody", 5))
    assert service.list_account_activity(ListAccountActivity(True, "nobody", 5, "")).items == []

"""Payment notifications end to end: the local provider signs, a real HTTP webhook endpoint
relays the raw body to billing, billing verifies and applies it (F10–F12)."""

from __future__ import annotations

import json
import logging
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import grpc
import pytest

from atelier.billing.v1 import billing_pb2 as pb
from atelier.billing.v1 import billing_pb2_grpc
from atelier_billing.adapters.payments.local import SIGNATURE_HEADER, LocalPaymentProvider, sign
from atelier_billing.application.ports.payments import OrderRef, OutgoingNotification
from atelier_billing.application.reconcile import ReconcilePendingOrders
from atelier_ports.clock import SystemClock
from tests.billing.integration.test_concurrency import run_together
from tests.billing.webhook_relay import WebhookRelay
from tests.support.billing_server import RunningBilling, start_billing_server

SECRET = "test-local-secret"


@dataclass
class Env:
    billing: RunningBilling
    stub: billing_pb2_grpc.BillingServiceStub
    relay: WebhookRelay
    vendor: LocalPaymentProvider  # the "provider side", signing like the sandbox does

    def md(self, user: str = "u1") -> tuple[tuple[str, str], ...]:
        return self.billing.metadata(user)

    def balance(self, user: str = "u1") -> pb.Balance:
        result: pb.Balance = self.stub.GetBalance(
            pb.GetBalanceRequest(), metadata=self.md(user)
        ).balance
        return result

    def order(self, order_id: str, user: str = "u1") -> pb.Order:
        result: pb.Order = self.stub.GetOrder(
            pb.GetOrderRequest(order_id=order_id), metadata=self.md(user)
        ).order
        return result

    def post(self, note: OutgoingNotification) -> int:
        request = urllib.request.Request(
            note.url, data=note.body, headers=dict(note.headers), method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)

    def ref(self, order: pb.Order, amount: int | None = None) -> OrderRef:
        return OrderRef(
            order.id, order.number, None, order.amount if amount is None else amount, order.currency
        )


@pytest.fixture
def env(database_url: str, tmp_path: Path) -> Iterator[Env]:
    relay = WebhookRelay()
    billing = start_billing_server(
        database_url,
        ATELIER_DATA_DIR=str(tmp_path),
        GATEWAY_PUBLIC_URL=relay.url,
        LOCAL_PAYMENT_WEBHOOK_SECRET=SECRET,
    )
    relay.attach(billing)
    vendor = LocalPaymentProvider(
        secret=SECRET,
        checkout_base_url=relay.url,
        webhook_url=f"{relay.url}/webhooks/local",
        records_dir=tmp_path / "local-payments",  # the provider's side, shared with billing's
        clock=SystemClock(),
    )
    with billing.channel() as channel:
        stub = billing.stub(channel)
        stub.SetUpAccount(pb.SetUpAccountRequest(), metadata=billing.metadata("u1"))
        yield Env(billing, stub, relay, vendor)
    relay.close()
    billing.stop()


def create_order(env: Env, item: str) -> pb.Order:
    result: pb.Order = env.stub.CreateOrder(
        pb.CreateOrderRequest(item_id=item, channel="local"), metadata=env.md()
    ).order
    return result


def test_sandbox_payment_activates_membership_and_grants_quota(env: Env) -> None:
    order = create_order(env, "plan_monthly")
    paid = env.stub.CompleteSandboxCheckout(
        pb.CompleteSandboxCheckoutRequest(order_id=order.id, outcome=pb.SANDBOX_OUTCOME_PAID),
        metadata=env.billing.metadata(None),
    ).order
    assert paid.status == pb.ORDER_STATUS_PAID and paid.provider_transaction_id
    assert env.relay.statuses == [200]
    balance = env.balance()
    assert balance.available == 310
    assert balance.membership.active and balance.membership.quota_left == 300
    assert balance.membership.plan_id == "plan_monthly"
    assert all(check.ok for check in env.billing.app.use_cases.check_ledger())


def test_sandbox_failure_fails_the_order(env: Env) -> None:
    order = create_order(env, "pack_100")
    failed = env.stub.CompleteSandboxCheckout(
        pb.CompleteSandboxCheckoutRequest(order_id=order.id, outcome=pb.SANDBOX_OUTCOME_FAILED),
        metadata=env.billing.metadata(None),
    ).order
    assert failed.status == pb.ORDER_STATUS_FAILED and env.balance().available == 10


def test_a_notification_delivered_ten_times_concurrently_grants_once(env: Env) -> None:
    order = create_order(env, "pack_100")
    note = env.vendor.sandbox_notification(env.ref(order), True, SystemClock().now())
    statuses = run_together([lambda: env.post(note)] * 10)
    assert set(statuses) == {200}
    assert env.balance().available == 110
    assert env.order(order.id).status == pb.ORDER_STATUS_PAID
    assert all(check.ok for check in env.billing.app.use_cases.check_ledger())


def test_forged_stale_unknown_and_mismatched_notifications_change_nothing(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    order = create_order(env, "pack_100")
    now = SystemClock().now()
    good = env.vendor.sandbox_notification(env.ref(order), True, now)
    tampered = json.loads(good.body)
    tampered["data"]["amount"] = 1
    forged = OutgoingNotification(good.url, good.headers, json.dumps(tampered).encode())
    wrong_key = OutgoingNotification(
        good.url,
        {**good.headers, SIGNATURE_HEADER: sign("not-the-secret", good.body, int(now.timestamp()))},
        good.body,
    )
    stale = env.vendor.sandbox_notification(env.ref(order), True, now - timedelta(minutes=10))
    ghost = env.vendor.sandbox_notification(
        OrderRef("ord_ghost", "AT-X", None, 999, "USD"), True, now
    )
    cheap = env.vendor.sandbox_notification(env.ref(order, amount=1), True, now)
    with caplog.at_level(logging.WARNING):
        for note in (forged, wrong_key, stale, ghost, cheap):
            assert env.post(note) == 400
    assert "payment amount mismatch" in caplog.text
    assert env.order(order.id).status == pb.ORDER_STATUS_PENDING
    assert env.balance().available == 10
    assert env.stub.ListLedgerEntries(pb.ListLedgerEntriesRequest(), metadata=env.md()).entries[
        0
    ].kind == (pb.LEDGER_ENTRY_KIND_GRANT)
    # the genuine notification still works afterwards
    assert env.post(good) == 200 and env.balance().available == 110


def test_a_lost_webhook_is_recovered_by_refreshing_the_order(env: Env) -> None:
    order = create_order(env, "pack_100")
    env.relay.close()  # the webhook endpoint is down: the notification is lost
    with pytest.raises(grpc.RpcError) as info:
        env.stub.CompleteSandboxCheckout(
            pb.CompleteSandboxCheckoutRequest(order_id=order.id, outcome=pb.SANDBOX_OUTCOME_PAID),
            metadata=env.billing.metadata(None),
        )
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert env.order(order.id).status == pb.ORDER_STATUS_PENDING
    refreshed = env.stub.RefreshOrder(
        pb.RefreshOrderRequest(order_id=order.id), metadata=env.md()
    ).order
    assert refreshed.status == pb.ORDER_STATUS_PAID
    assert env.stub.RefreshOrder(
        pb.RefreshOrderRequest(order_id=order.id), metadata=env.md()
    ).order.status == (pb.ORDER_STATUS_PAID)
    assert env.balance().available == 110


def test_concurrent_refreshes_and_webhook_grant_once(env: Env) -> None:
    order = create_order(env, "pack_500")
    # The provider records the payment (as the sandbox's Pay does); webhooks and "I have paid"
    # refreshes then race for the same order.
    note = env.vendor.sandbox_notification(env.ref(order), True, SystemClock().now())
    calls = [lambda: env.post(note)] * 5 + [
        lambda: (
            env.stub.RefreshOrder(
                pb.RefreshOrderRequest(order_id=order.id), metadata=env.md(), timeout=30
            ).order.status
        )
    ] * 5
    results = run_together(calls)
    assert results == [200] * 5 + [pb.ORDER_STATUS_PAID] * 5
    assert env.balance().available == 510
    assert all(check.ok for check in env.billing.app.use_cases.check_ledger())


def test_the_periodic_sweep_recovers_a_lost_webhook(env: Env) -> None:
    order = create_order(env, "plan_monthly")
    env.relay.close()
    with pytest.raises(grpc.RpcError):
        env.stub.CompleteSandboxCheckout(
            pb.CompleteSandboxCheckoutRequest(order_id=order.id, outcome=pb.SANDBOX_OUTCOME_PAID),
            metadata=env.billing.metadata(None),
        )
    assert (
        env.billing.app.use_cases.reconcile_pending_orders(ReconcilePendingOrders(timedelta(0)))
        == 1
    )
    assert env.order(order.id).status == pb.ORDER_STATUS_PAID
    assert env.balance().membership.active

"""Every idempotent repeat billing offers, through the real gRPC server on SQLite and PostgreSQL
(issue 9, finding 11): a repeat has one effect, answers like the first call, and never opens a
second unit of work inside the first (on SQLite that waited 30 s for its own lock → INTERNAL).

Each call carries a short deadline, so a repeat that waits for a lock fails fast instead of
hanging the suite.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest

from atelier.billing.v1 import billing_pb2 as pb
from atelier.billing.v1 import billing_pb2_grpc
from tests.billing.webhook_relay import WebhookRelay
from tests.support.billing_server import RunningBilling, start_billing_server

DEADLINE = 8.0


@dataclass
class Env:
    billing: RunningBilling
    stub: billing_pb2_grpc.BillingServiceStub
    delivered: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)

    def md(self, user: str = "u1") -> tuple[tuple[str, str], ...]:
        return self.billing.metadata(user)

    @property
    def admin(self) -> tuple[tuple[str, str], ...]:
        return self.billing.metadata("admin-1", role="admin")

    def balance(self, user: str = "u1") -> pb.Balance:
        result: pb.Balance = self.stub.GetBalance(
            pb.GetBalanceRequest(), metadata=self.md(user), timeout=DEADLINE
        ).balance
        return result

    def ledger(self, user: str = "u1") -> list[pb.LedgerEntry]:
        return list(
            self.stub.ListLedgerEntries(
                pb.ListLedgerEntriesRequest(page_size=100), metadata=self.md(user), timeout=DEADLINE
            ).entries
        )

    def consistent(self) -> bool:
        return all(c.ok for c in self.billing.app.use_cases.check_ledger())


@pytest.fixture
def env(database_url: str, tmp_path: Path) -> Iterator[Env]:
    relay = WebhookRelay()
    billing = start_billing_server(
        database_url,
        ATELIER_DATA_DIR=str(tmp_path),
        LOCAL_PAYMENT_WEBHOOK_URL=f"{relay.url}/webhooks/local",
    )
    relay.attach(billing)
    forward = relay.forward
    assert forward is not None
    delivered: list[tuple[str, dict[str, str], bytes]] = []

    def recording(provider: str, headers: Mapping[str, str], body: bytes) -> int:
        delivered.append((provider, dict(headers), body))
        return forward(provider, headers, body)

    relay.forward = recording
    with billing.channel() as channel:
        stub = billing.stub(channel)
        stub.SetUpAccount(pb.SetUpAccountRequest(), metadata=billing.metadata("u1"))
        yield Env(billing, stub, delivered)
    relay.close()
    billing.stop()


def _code(call: object) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as info:
        call()  # type: ignore[operator]
    return info.value.code()


def test_issue_11_repeated_admin_adjustment_answers_at_once_with_one_effect(env: Env) -> None:
    def adjust(amount: int, request_id: str) -> pb.Balance:
        result: pb.Balance = env.stub.AdjustCredits(
            pb.AdjustCreditsRequest(
                user_id="u1", amount=amount, reason="support", request_id=request_id
            ),
            metadata=env.admin,
            timeout=DEADLINE,
        ).balance
        return result

    first = adjust(25, "adj-1")
    assert first.available == 35
    assert adjust(25, "adj-1").available == 35  # repeat: same answer, no second grant
    assert adjust(-5, "adj-2").available == 30
    assert adjust(-5, "adj-2").available == 30
    # the same request id for another adjustment is a conflict, not a silent success
    assert _code(lambda: adjust(7, "adj-1")) == grpc.StatusCode.ALREADY_EXISTS
    adjustments = [e.amount for e in env.ledger() if e.kind == pb.LEDGER_ENTRY_KIND_ADJUST]
    assert adjustments == [-5, 25]
    assert env.consistent()


def test_repeated_account_set_up_grants_the_bonus_once(env: Env) -> None:
    for _ in range(3):
        response = env.stub.SetUpAccount(
            pb.SetUpAccountRequest(), metadata=env.md(), timeout=DEADLINE
        )
        assert (response.created, response.balance.available) == (False, 10)
    assert [e.amount for e in env.ledger()] == [10]


def test_repeated_hold_capture_and_release_have_one_effect(env: Env) -> None:
    def hold(request_id: str, amount: int) -> pb.Hold:
        result: pb.Hold = env.stub.HoldCredits(
            pb.HoldCreditsRequest(request_id=request_id, amount=amount, reference="task"),
            metadata=env.md(),
            timeout=DEADLINE,
        ).hold
        return result

    assert hold("t1", 3) == hold("t1", 3)
    assert _code(lambda: hold("t1", 4)) == grpc.StatusCode.ALREADY_EXISTS
    assert hold("t2", 2) == hold("t2", 2)
    assert env.balance().held == 5

    def capture(request_id: str) -> pb.Hold:
        result: pb.Hold = env.stub.CaptureHold(
            pb.CaptureHoldRequest(request_id=request_id), metadata=env.md(), timeout=DEADLINE
        ).hold
        return result

    def release(request_id: str) -> pb.Hold:
        result: pb.Hold = env.stub.ReleaseHold(
            pb.ReleaseHoldRequest(request_id=request_id), metadata=env.md(), timeout=DEADLINE
        ).hold
        return result

    assert capture("t1").status == capture("t1").status == pb.HOLD_STATUS_CAPTURED
    assert release("t2").status == release("t2").status == pb.HOLD_STATUS_RELEASED
    assert _code(lambda: release("t1")) == grpc.StatusCode.FAILED_PRECONDITION
    assert _code(lambda: capture("t2")) == grpc.StatusCode.FAILED_PRECONDITION
    balance = env.balance()
    assert (balance.available, balance.held) == (7, 0)
    kinds = [e.kind for e in env.ledger()]
    assert kinds.count(pb.LEDGER_ENTRY_KIND_HOLD) == 2
    assert kinds.count(pb.LEDGER_ENTRY_KIND_CAPTURE) == 1
    assert kinds.count(pb.LEDGER_ENTRY_KIND_RELEASE) == 1
    assert env.consistent()


def test_repeated_order_request_returns_the_first_order(env: Env) -> None:
    def order(item: str, request_id: str) -> pb.Order:
        result: pb.Order = env.stub.CreateOrder(
            pb.CreateOrderRequest(item_id=item, channel="local", request_id=request_id),
            metadata=env.md(),
            timeout=DEADLINE,
        ).order
        return result

    first = order("pack_100", "o1")
    again = order("pack_100", "o1")
    assert (again.id, again.number, again.checkout.url) == (
        first.id,
        first.number,
        first.checkout.url,
    )
    assert _code(lambda: order("pack_500", "o1")) == grpc.StatusCode.ALREADY_EXISTS
    orders = env.stub.ListOrders(pb.ListOrdersRequest(), metadata=env.md(), timeout=DEADLINE)
    assert [o.id for o in orders.orders] == [first.id]


def test_replayed_payment_notification_grants_once(env: Env) -> None:
    order = env.stub.CreateOrder(
        pb.CreateOrderRequest(item_id="pack_100", channel="local", request_id="o1"),
        metadata=env.md(),
        timeout=DEADLINE,
    ).order
    paid = env.stub.CompleteSandboxCheckout(
        pb.CompleteSandboxCheckoutRequest(order_id=order.id, outcome=pb.SANDBOX_OUTCOME_PAID),
        metadata=env.billing.metadata(None),
        timeout=DEADLINE,
    ).order
    assert paid.status == pb.ORDER_STATUS_PAID
    [(provider, headers, body)] = env.delivered
    request = pb.HandlePaymentNotificationRequest(
        provider=provider,
        headers=[pb.Header(name=k, value=v) for k, v in headers.items()],
        body=body,
    )
    for _ in range(2):  # the provider delivers the same notification again
        replay = env.stub.HandlePaymentNotification(
            request, metadata=env.billing.metadata(None), timeout=DEADLINE
        )
        assert (replay.applied, replay.order_id) == (False, order.id)
    # a second Pay press on a paid order is refused, never a second grant
    again = env.stub.CompleteSandboxCheckout
    assert (
        _code(
            lambda: again(
                pb.CompleteSandboxCheckoutRequest(
                    order_id=order.id, outcome=pb.SANDBOX_OUTCOME_PAID
                ),
                metadata=env.billing.metadata(None),
                timeout=DEADLINE,
            )
        )
        == grpc.StatusCode.FAILED_PRECONDITION
    )
    assert env.balance().available == 110
    assert [e.amount for e in env.ledger()] == [100, 10]
    assert env.consistent()

"""No odd input makes billing answer INTERNAL (issue 9, "no 5xx on any input"): NUL characters
(PostgreSQL refuses them in text), amounts at the int64 limits, timestamps out of range, unknown
enum values — through the real gRPC server on SQLite and PostgreSQL; and nothing changes."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from atelier.billing.v1 import billing_pb2 as pb
from atelier.billing.v1 import billing_pb2_grpc
from tests.billing.stripe_env import running_stripe_billing
from tests.support.billing_server import RunningBilling, start_billing_server
from tests.support.stripe_server import WEBHOOK_SECRET, sign

INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)


@pytest.fixture
def billing(database_url: str, tmp_path: Path) -> Iterator[RunningBilling]:
    server = start_billing_server(database_url, ATELIER_DATA_DIR=str(tmp_path))
    yield server
    server.stop()


def _status(exc: grpc.RpcError) -> tuple[grpc.StatusCode, str]:
    status = rpc_status.from_call(exc)  # type: ignore[arg-type]
    field = ""
    if status is not None:
        for detail in status.details:
            info = error_details_pb2.ErrorInfo()
            if detail.Unpack(info):
                field = info.metadata.get("field", "")
    return exc.code(), field


def test_odd_inputs_are_invalid_argument_and_change_nothing(billing: RunningBilling) -> None:
    with billing.channel() as channel:
        stub = billing_pb2_grpc.BillingServiceStub(channel)
        md = billing.metadata("u1")
        admin = billing.metadata("admin-1", role="admin")
        none = billing.metadata(None)
        stub.SetUpAccount(pb.SetUpAccountRequest(), metadata=md)
        far = pb.AdjustCreditsRequest(user_id="u1", amount=5, reason="x", request_id="a3")
        far.expire_time.seconds = 2**40  # beyond year 9999: valid on the wire, no datetime
        cases: list[tuple[str, Callable[[], Any], str]] = [
            (
                "NUL in request_id",
                lambda: stub.HoldCredits(
                    pb.HoldCreditsRequest(request_id="t\x001", amount=1), metadata=md
                ),
                "request_id",
            ),
            (
                "NUL in reference",
                lambda: stub.HoldCredits(
                    pb.HoldCreditsRequest(request_id="t1", amount=1, reference="a\x00b"),
                    metadata=md,
                ),
                "reference",
            ),
            (
                "NUL in a captured request_id",
                lambda: stub.CaptureHold(pb.CaptureHoldRequest(request_id="\x00"), metadata=md),
                "request_id",
            ),
            (
                "NUL in a released request_id",
                lambda: stub.ReleaseHold(pb.ReleaseHoldRequest(request_id="x\x00"), metadata=md),
                "request_id",
            ),
            (
                "hold of int64 max",
                lambda: stub.HoldCredits(
                    pb.HoldCreditsRequest(request_id="big", amount=INT64_MAX), metadata=md
                ),
                "amount",
            ),
            (
                "NUL in email",
                lambda: stub.SetUpAccount(
                    pb.SetUpAccountRequest(email="a\x00@example.com"), metadata=md
                ),
                "email",
            ),
            (
                "NUL in name",
                lambda: stub.UpdateAccountContact(
                    pb.UpdateAccountContactRequest(name="A\x00da"), metadata=md
                ),
                "name",
            ),
            (
                "NUL in an order id",
                lambda: stub.GetOrder(pb.GetOrderRequest(order_id="ord\x00"), metadata=md),
                "order_id",
            ),
            (
                "NUL in a refreshed order id",
                lambda: stub.RefreshOrder(pb.RefreshOrderRequest(order_id="\x00"), metadata=md),
                "order_id",
            ),
            (
                "NUL in an order request_id",
                lambda: stub.CreateOrder(
                    pb.CreateOrderRequest(item_id="pack_100", channel="local", request_id="\x00"),
                    metadata=md,
                ),
                "request_id",
            ),
            (
                "NUL in a sandbox order id",
                lambda: stub.CompleteSandboxCheckout(
                    pb.CompleteSandboxCheckoutRequest(
                        order_id="o\x00", outcome=pb.SANDBOX_OUTCOME_PAID
                    ),
                    metadata=none,
                ),
                "order_id",
            ),
            (
                "an unknown sandbox outcome",
                lambda: stub.CompleteSandboxCheckout(
                    pb.CompleteSandboxCheckoutRequest(order_id="ord_x", outcome=99),  # type: ignore[arg-type]
                    metadata=none,
                ),
                "outcome",
            ),
            (
                "NUL in an adjusted user id",
                lambda: stub.AdjustCredits(
                    pb.AdjustCreditsRequest(user_id="u\x001", amount=5, reason="x", request_id="a"),
                    metadata=admin,
                ),
                "user_id",
            ),
            (
                "NUL in a reason",
                lambda: stub.AdjustCredits(
                    pb.AdjustCreditsRequest(user_id="u1", amount=5, reason="\x00", request_id="a"),
                    metadata=admin,
                ),
                "reason",
            ),
            (
                "an adjustment of int64 max",
                lambda: stub.AdjustCredits(
                    pb.AdjustCreditsRequest(
                        user_id="u1", amount=INT64_MAX, reason="x", request_id="a1"
                    ),
                    metadata=admin,
                ),
                "amount",
            ),
            (
                "an adjustment of int64 min",
                lambda: stub.AdjustCredits(
                    pb.AdjustCreditsRequest(
                        user_id="u1", amount=INT64_MIN, reason="x", request_id="a2"
                    ),
                    metadata=admin,
                ),
                "amount",
            ),
            (
                "an expiry beyond year 9999",
                lambda: stub.AdjustCredits(far, metadata=admin),
                "expire_time",
            ),
            (
                "an expiry in the past",
                lambda: stub.AdjustCredits(
                    pb.AdjustCreditsRequest(
                        user_id="u1",
                        amount=5,
                        reason="x",
                        request_id="a4",
                        expire_time=Timestamp(seconds=86400),
                    ),
                    metadata=admin,
                ),
                "expire_time",
            ),
            (
                "NUL in a provider name",
                lambda: stub.HandlePaymentNotification(
                    pb.HandlePaymentNotificationRequest(provider="lo\x00cal", body=b"{}"),
                    metadata=none,
                ),
                "provider",
            ),
        ]
        for label, call, field in cases:
            with pytest.raises(grpc.RpcError) as info:
                call()
            assert _status(info.value) == (grpc.StatusCode.INVALID_ARGUMENT, field), label
        # a big but sane adjustment twice does not overflow the balance into INTERNAL
        for n in range(2):
            with pytest.raises(grpc.RpcError) as info:
                stub.AdjustCredits(
                    pb.AdjustCreditsRequest(
                        user_id="u1", amount=INT64_MAX // 2, reason="x", request_id=f"h{n}"
                    ),
                    metadata=admin,
                )
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        balance = stub.GetBalance(pb.GetBalanceRequest(), metadata=md).balance
        assert (balance.available, balance.held) == (10, 0)
        entries = stub.ListLedgerEntries(pb.ListLedgerEntriesRequest(), metadata=md).entries
        assert [e.amount for e in entries] == [10]
        assert not stub.ListOrders(pb.ListOrdersRequest(), metadata=md).orders


def test_signed_but_malformed_stripe_events_are_invalid_argument(
    database_url: str, tmp_path: Path
) -> None:
    """A body that carries a valid signature but not an event of the expected shape (wrong
    types, absurd nesting) is refused as INVALID_ARGUMENT, never INTERNAL."""
    bodies = [
        b'{"id": "evt_1", "type": "charge.refunded", "data": {"object": []}}',
        b'{"id": "evt_2", "type": "customer.updated", "data": {"object": "cus_1"}}',
        b'{"id": "evt_3", "type": "invoice.paid", "data": {"object": {"billing_reason": '
        b'"subscription_cycle", "lines": {"data": [7]}}}}',
        b'{"id": "evt_4", "type": "checkout.session.completed", "data": []}',
        b"[" * 50_000 + b"]" * 50_000,
    ]
    with running_stripe_billing(database_url, tmp_path) as env:
        for body in bodies:
            now = int(time.time())
            request = pb.HandlePaymentNotificationRequest(
                provider="stripe",
                headers=[pb.Header(name="Stripe-Signature", value=sign(body, WEBHOOK_SECRET, now))],
                body=body,
            )
            with pytest.raises(grpc.RpcError) as info:
                env.stub.HandlePaymentNotification(request, metadata=env.billing.metadata(None))
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, body[:60]
        assert env.balance().available == 10


def test_absurdly_long_strings_are_invalid_argument_with_short_messages(
    billing: RunningBilling,
) -> None:
    """A megabyte in any text field is refused by name; a long unknown value is quoted cut short
    (quoting it whole made the status too big for gRPC: RESOURCE_EXHAUSTED at the client)."""
    huge, long = "x" * 1_000_000, "y" * 9_000
    with billing.channel() as channel:
        stub = billing_pb2_grpc.BillingServiceStub(channel)
        md = billing.metadata("u1")
        none = billing.metadata(None)
        stub.SetUpAccount(pb.SetUpAccountRequest(), metadata=md)
        cases: list[tuple[Callable[[], Any], str]] = [
            (lambda: stub.GetOrder(pb.GetOrderRequest(order_id=huge), metadata=md), "order_id"),
            (
                lambda: stub.CreateOrder(
                    pb.CreateOrderRequest(item_id=huge, channel="local"), metadata=md
                ),
                "item_id",
            ),
            (
                lambda: stub.HoldCredits(
                    pb.HoldCreditsRequest(request_id="r", amount=1, reference=huge), metadata=md
                ),
                "reference",
            ),
            (
                lambda: stub.HandlePaymentNotification(
                    pb.HandlePaymentNotificationRequest(provider=huge, body=b"{}"), metadata=none
                ),
                "provider",
            ),
            (
                lambda: stub.HandlePaymentNotification(
                    pb.HandlePaymentNotificationRequest(
                        provider="local", headers=[pb.Header(name="x", value=huge)], body=b"{}"
                    ),
                    metadata=none,
                ),
                "value",
            ),
            (
                lambda: stub.CreateOrder(
                    pb.CreateOrderRequest(item_id=long, channel="local"), metadata=md
                ),
                "item_id",
            ),
            (
                lambda: stub.HandlePaymentNotification(
                    pb.HandlePaymentNotificationRequest(provider=long, body=b"{}"), metadata=none
                ),
                "provider",
            ),
        ]
        for call, field in cases:
            with pytest.raises(grpc.RpcError) as info:
                call()
            assert _status(info.value) == (grpc.StatusCode.INVALID_ARGUMENT, field), field
            assert len(info.value.details() or "") < 200
        assert stub.GetBalance(pb.GetBalanceRequest(), metadata=md).balance.held == 0

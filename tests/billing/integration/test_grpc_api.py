"""The billing gRPC server, for real, on port 0 — on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_status import rpc_status

from atelier.billing.v1 import billing_pb2 as pb
from atelier.billing.v1 import billing_pb2_grpc
from tests.support.billing_server import RunningBilling, start_billing_server


@pytest.fixture
def billing(database_url: str, tmp_path: Path) -> Iterator[RunningBilling]:
    server = start_billing_server(database_url, ATELIER_DATA_DIR=str(tmp_path))
    yield server
    server.stop()


@pytest.fixture
def stub(billing: RunningBilling) -> Iterator[billing_pb2_grpc.BillingServiceStub]:
    with billing.channel() as channel:
        yield billing.stub(channel)


def reason_of(exc: grpc.RpcError) -> str:
    status = rpc_status.from_call(exc)  # type: ignore[arg-type]
    assert status is not None
    for detail in status.details:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            result: str = info.reason
            return result
    return ""


def test_calls_without_the_internal_credential_are_refused(
    billing: RunningBilling, stub: billing_pb2_grpc.BillingServiceStub
) -> None:
    for metadata in [
        (("x-atelier-user-id", "u1"),),
        (("x-atelier-internal-token", "wrong"), ("x-atelier-user-id", "u1")),
    ]:
        with pytest.raises(grpc.RpcError) as info:
            stub.GetBalance(pb.GetBalanceRequest(), metadata=metadata)
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.RpcError) as info:
        stub.GetBalance(pb.GetBalanceRequest(), metadata=billing.metadata(None))
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_hold_capture_release_over_grpc(
    billing: RunningBilling, stub: billing_pb2_grpc.BillingServiceStub
) -> None:
    md = billing.metadata("u1")
    setup = stub.SetUpAccount(pb.SetUpAccountRequest(), metadata=md)
    assert (setup.created, setup.balance.available) == (True, 10)
    assert not stub.SetUpAccount(pb.SetUpAccountRequest(), metadata=md).created
    stub.HoldCredits(
        pb.HoldCreditsRequest(request_id="t1", amount=4, reference="task:t1"), metadata=md
    )
    stub.HoldCredits(pb.HoldCreditsRequest(request_id="t2", amount=2), metadata=md)
    captured = stub.CaptureHold(pb.CaptureHoldRequest(request_id="t1"), metadata=md).hold
    released = stub.ReleaseHold(pb.ReleaseHoldRequest(request_id="t2"), metadata=md).hold
    assert (captured.status, released.status) == (pb.HOLD_STATUS_CAPTURED, pb.HOLD_STATUS_RELEASED)
    balance = stub.GetBalance(pb.GetBalanceRequest(), metadata=md).balance
    assert (balance.available, balance.held) == (6, 0)
    entries = stub.ListLedgerEntries(pb.ListLedgerEntriesRequest(page_size=2), metadata=md)
    assert [e.kind for e in entries.entries] == [
        pb.LEDGER_ENTRY_KIND_RELEASE,
        pb.LEDGER_ENTRY_KIND_CAPTURE,
    ]
    rest = stub.ListLedgerEntries(
        pb.ListLedgerEntriesRequest(page_size=10, page_token=entries.next_page_token), metadata=md
    )
    assert len(rest.entries) == 3 and rest.next_page_token == ""


def test_errors_carry_status_codes_and_reasons(
    billing: RunningBilling, stub: billing_pb2_grpc.BillingServiceStub
) -> None:
    md = billing.metadata("u1")
    stub.SetUpAccount(pb.SetUpAccountRequest(), metadata=md)
    cases: list[tuple[Callable[[], Any], grpc.StatusCode, str]] = [
        (
            lambda: stub.HoldCredits(
                pb.HoldCreditsRequest(request_id="big", amount=11), metadata=md
            ),
            grpc.StatusCode.FAILED_PRECONDITION,
            "INSUFFICIENT_CREDITS",
        ),
        (
            lambda: stub.HoldCredits(
                pb.HoldCreditsRequest(request_id="neg", amount=-1), metadata=md
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_ARGUMENT",
        ),
        (
            lambda: stub.CaptureHold(pb.CaptureHoldRequest(request_id="none"), metadata=md),
            grpc.StatusCode.NOT_FOUND,
            "HOLD_NOT_FOUND",
        ),
        (
            lambda: stub.GetOrder(pb.GetOrderRequest(order_id="ord_x"), metadata=md),
            grpc.StatusCode.NOT_FOUND,
            "ORDER_NOT_FOUND",
        ),
        (
            lambda: stub.AdjustCredits(
                pb.AdjustCreditsRequest(user_id="u1", amount=5, reason="x", request_id="r"),
                metadata=md,
            ),
            grpc.StatusCode.PERMISSION_DENIED,
            "ADMIN_ONLY",
        ),
        (
            lambda: stub.GetBalance(pb.GetBalanceRequest(), metadata=billing.metadata("nobody")),
            grpc.StatusCode.NOT_FOUND,
            "ACCOUNT_NOT_FOUND",
        ),
    ]
    for call, code, reason in cases:
        with pytest.raises(grpc.RpcError) as info:
            call()
        assert (info.value.code(), reason_of(info.value)) == (code, reason)
    assert stub.GetBalance(pb.GetBalanceRequest(), metadata=md).balance.available == 10


def test_admin_adjusts_credits(
    billing: RunningBilling, stub: billing_pb2_grpc.BillingServiceStub
) -> None:
    stub.SetUpAccount(pb.SetUpAccountRequest(), metadata=billing.metadata("u1"))
    response = stub.AdjustCredits(
        pb.AdjustCreditsRequest(
            user_id="u1", amount=25, reason="support gesture", request_id="adj-1"
        ),
        metadata=billing.metadata("admin-1", role="admin"),
    )
    assert response.balance.available == 35


def test_orders_are_private_to_their_user(
    billing: RunningBilling, stub: billing_pb2_grpc.BillingServiceStub
) -> None:
    for user in ("a", "b"):
        stub.SetUpAccount(pb.SetUpAccountRequest(), metadata=billing.metadata(user))
    order = stub.CreateOrder(
        pb.CreateOrderRequest(item_id="pack_100", channel="local"), metadata=billing.metadata("a")
    ).order
    assert order.number.startswith("AT-")
    assert f"/sandbox/checkout/{order.id}?token=" in order.checkout.url
    calls: tuple[Callable[[], Any], ...] = (
        lambda: stub.GetOrder(
            pb.GetOrderRequest(order_id=order.id), metadata=billing.metadata("b")
        ),
        lambda: stub.RefreshOrder(
            pb.RefreshOrderRequest(order_id=order.id), metadata=billing.metadata("b")
        ),
    )
    for call in calls:
        with pytest.raises(grpc.RpcError) as info:
            call()
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert (
        list(stub.ListOrders(pb.ListOrdersRequest(), metadata=billing.metadata("b")).orders) == []
    )
    assert [
        o.id for o in stub.ListOrders(pb.ListOrdersRequest(), metadata=billing.metadata("a")).orders
    ] == [order.id]


def test_catalog_comes_from_configuration(
    billing: RunningBilling, stub: billing_pb2_grpc.BillingServiceStub
) -> None:
    catalog = stub.GetCatalog(pb.GetCatalogRequest(), metadata=billing.metadata(None))
    assert catalog.market == "local" and list(catalog.channels) == ["local"]
    plan = next(i for i in catalog.items if i.kind == pb.CATALOG_ITEM_KIND_MEMBERSHIP)
    assert plan.period_days == 30 and plan.credits == 300


def test_health_and_reflection(billing: RunningBilling) -> None:
    with billing.channel() as channel:
        health = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service="atelier.billing.v1.BillingService")
        )
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        responses = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")])
        )
        names = {s.name for r in responses for s in r.list_services_response.service}
    assert "atelier.billing.v1.BillingService" in names

"""Races and repeats against the real server and database (F6, F7).

Real parallelism: a pool of threads, each call on the shared HTTP/2 channel reaching the server's
thread pool and its own database connection.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import grpc
import pytest

from atelier.billing.v1 import billing_pb2 as pb
from atelier.billing.v1 import billing_pb2_grpc
from tests.billing.integration.test_grpc_api import reason_of
from tests.support.billing_server import RunningBilling, start_billing_server


@pytest.fixture
def billing(database_url: str, tmp_path: Path) -> Iterator[RunningBilling]:
    server = start_billing_server(
        database_url,
        ATELIER_DATA_DIR=str(tmp_path),
        SIGNUP_BONUS_CREDITS=37,
        BILLING_GRPC_WORKERS=32,
    )
    yield server
    server.stop()


@pytest.fixture
def stub(billing: RunningBilling) -> Iterator[billing_pb2_grpc.BillingServiceStub]:
    with billing.channel() as channel:
        yield billing.stub(channel)


def run_together(calls: list[Callable[[], Any]]) -> list[Any]:
    """Run every call at once, one thread each, released together by a barrier; returns each
    call's result or its RpcError."""
    barrier = threading.Barrier(len(calls))

    def attempt(call: Callable[[], Any]) -> Any:
        barrier.wait(timeout=60)
        try:
            return call()
        except grpc.RpcError as exc:
            return exc

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(attempt, calls))


def outcome(result: Any) -> str:
    if isinstance(result, grpc.RpcError):
        return reason_of(result) or str(result.code())
    return "ok"


def test_200_concurrent_holds_against_37_credits(
    billing: RunningBilling, stub: billing_pb2_grpc.BillingServiceStub
) -> None:
    md = billing.metadata("racer")
    stub.SetUpAccount(pb.SetUpAccountRequest(), metadata=md)
    calls: list[Callable[[], Any]] = [
        partial(
            stub.HoldCredits,
            pb.HoldCreditsRequest(request_id=f"task-{i}", amount=1),
            metadata=md,
            timeout=60,
        )
        for i in range(200)
    ]
    results = Counter(outcome(r) for r in run_together(calls))
    assert results == {"ok": 37, "INSUFFICIENT_CREDITS": 163}
    balance = stub.GetBalance(pb.GetBalanceRequest(), metadata=md).balance
    assert (balance.available, balance.held) == (0, 37)
    assert all(g.remaining >= 0 for g in balance.grants)
    assert all(check.ok for check in billing.app.use_cases.check_ledger())


def test_the_same_hold_ten_times_concurrently_is_one_hold(
    billing: RunningBilling, stub: billing_pb2_grpc.BillingServiceStub
) -> None:
    md = billing.metadata("u1")
    stub.SetUpAccount(pb.SetUpAccountRequest(), metadata=md)
    request = pb.HoldCreditsRequest(request_id="task-1", amount=5, reference="task:1")
    results = run_together([lambda: stub.HoldCredits(request, metadata=md, timeout=60)] * 10)
    assert {outcome(r) for r in results} == {"ok"}
    balance = stub.GetBalance(pb.GetBalanceRequest(), metadata=md).balance
    assert (balance.available, balance.held) == (32, 5)
    assert all(check.ok for check in billing.app.use_cases.check_ledger())


@pytest.mark.parametrize("first,second", [("capture", "release"), ("release", "capture")])
def test_settling_ten_times_concurrently_is_one_effect_and_the_opposite_is_refused(
    billing: RunningBilling, stub: billing_pb2_grpc.BillingServiceStub, first: str, second: str
) -> None:
    md = billing.metadata("u1")
    stub.SetUpAccount(pb.SetUpAccountRequest(), metadata=md)
    stub.HoldCredits(pb.HoldCreditsRequest(request_id="t", amount=7), metadata=md)
    calls = {
        "capture": lambda: stub.CaptureHold(
            pb.CaptureHoldRequest(request_id="t"), metadata=md, timeout=60
        ),
        "release": lambda: stub.ReleaseHold(
            pb.ReleaseHoldRequest(request_id="t"), metadata=md, timeout=60
        ),
    }
    assert {outcome(r) for r in run_together([calls[first]] * 10)} == {"ok"}
    before = stub.GetBalance(pb.GetBalanceRequest(), metadata=md).balance
    refused = outcome(run_together([calls[second]])[0])
    assert refused == ("HOLD_ALREADY_CAPTURED" if first == "capture" else "HOLD_ALREADY_RELEASED")
    after = stub.GetBalance(pb.GetBalanceRequest(), metadata=md).balance
    expected = (30, 0) if first == "capture" else (37, 0)
    assert (before.available, before.held) == (after.available, after.held) == expected
    entries = stub.ListLedgerEntries(
        pb.ListLedgerEntriesRequest(page_size=100), metadata=md
    ).entries
    assert len(entries) == 3  # grant, hold, one settlement
    assert all(check.ok for check in billing.app.use_cases.check_ledger())


def test_racing_capture_and_release_settle_exactly_once(
    billing: RunningBilling, stub: billing_pb2_grpc.BillingServiceStub
) -> None:
    md = billing.metadata("u1")
    stub.SetUpAccount(pb.SetUpAccountRequest(), metadata=md)
    for i in range(10):
        stub.HoldCredits(pb.HoldCreditsRequest(request_id=f"t{i}", amount=1), metadata=md)
    calls: list[Callable[[], Any]] = []
    for i in range(10):
        calls.append(
            partial(
                stub.CaptureHold, pb.CaptureHoldRequest(request_id=f"t{i}"), metadata=md, timeout=60
            )
        )
        calls.append(
            partial(
                stub.ReleaseHold, pb.ReleaseHoldRequest(request_id=f"t{i}"), metadata=md, timeout=60
            )
        )
    results = [outcome(r) for r in run_together(calls)]
    assert results.count("ok") == 10
    balance = stub.GetBalance(pb.GetBalanceRequest(), metadata=md).balance
    captured = sum(1 for i in range(10) if results[2 * i] == "ok")
    assert (balance.available, balance.held) == (37 - captured, 0)
    assert all(check.ok for check in billing.app.use_cases.check_ledger())

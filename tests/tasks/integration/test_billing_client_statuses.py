"""Issue 9 #12 for the tasks service's billing client: each status billing may answer a hold,
capture or release with (a real gRPC server on port 0) has one meaning, and only the transient
ones are retried — ALREADY_EXISTS, UNAUTHENTICATED or INVALID_ARGUMENT are not "hold in doubt"."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from atelier_tasks.adapters.billing_grpc import GrpcBillingClient
from atelier_tasks.domain.errors import BillingRefused, BillingUnavailable, InsufficientCredits
from tests.common.scripted_grpc import ScriptedServer, scripted_server

HOLD = "/atelier.billing.v1.BillingService/HoldCredits"
CAPTURE = "/atelier.billing.v1.BillingService/CaptureHold"
RELEASE = "/atelier.billing.v1.BillingService/ReleaseHold"


@pytest.fixture
def billing() -> Iterator[tuple[ScriptedServer, GrpcBillingClient]]:
    with scripted_server(HOLD, CAPTURE, RELEASE) as server:
        client = GrpcBillingClient(server.address, "token", timeout=2.0, retries=3, backoff=0.01)
        try:
            yield server, client
        finally:
            client.close()


@pytest.mark.parametrize(
    ("status", "reason", "raised", "attempts"),
    [
        ("UNAVAILABLE", "", BillingUnavailable, 3),
        ("DEADLINE_EXCEEDED", "", BillingUnavailable, 3),
        ("FAILED_PRECONDITION", "INSUFFICIENT_CREDITS", InsufficientCredits, 1),
        ("NOT_FOUND", "ACCOUNT_NOT_FOUND", InsufficientCredits, 1),
        ("ALREADY_EXISTS", "IDEMPOTENCY_CONFLICT", BillingRefused, 1),
        ("UNAUTHENTICATED", "", BillingRefused, 1),
        ("INVALID_ARGUMENT", "INVALID_ARGUMENT", BillingRefused, 1),
        ("PERMISSION_DENIED", "", BillingRefused, 1),
        ("FAILED_PRECONDITION", "ACCOUNT_CLOSED", BillingRefused, 1),
        ("INTERNAL", "INTERNAL", BillingRefused, 1),
    ],
)
def test_hold_answers(
    billing: tuple[ScriptedServer, GrpcBillingClient],
    status: str,
    reason: str,
    raised: type[Exception],
    attempts: int,
) -> None:
    server, client = billing
    server.answer(HOLD, status, reason=reason)
    with pytest.raises(raised):
        client.hold("u1", "task_1", 1, "task:task_1")
    assert server.calls[HOLD] == attempts
    if raised is not BillingUnavailable:
        assert not issubclass(raised, BillingUnavailable)  # never "in doubt"


def test_hold_ok_and_the_budget_bounds_the_retries(
    billing: tuple[ScriptedServer, GrpcBillingClient],
) -> None:
    server, client = billing
    client.hold("u1", "task_1", 1, "task:task_1")  # no error: held
    server.answer(HOLD, "SLOW")
    with pytest.raises(BillingUnavailable):
        client.hold("u1", "task_1", 1, "task:task_1", budget=0.3)
    assert server.calls[HOLD] == 1  # no time left for a second attempt


@pytest.mark.parametrize(
    ("status", "reason", "outcome", "attempts"),
    [
        ("OK", "", True, 1),
        ("NOT_FOUND", "HOLD_NOT_FOUND", False, 1),
        ("FAILED_PRECONDITION", "HOLD_ALREADY_CAPTURED", True, 1),
        ("UNAVAILABLE", "", BillingUnavailable, 3),
        ("UNAUTHENTICATED", "", BillingUnavailable, 1),  # owed: the sweep tries later
        ("INTERNAL", "INTERNAL", BillingUnavailable, 1),
    ],
)
def test_release_answers(
    billing: tuple[ScriptedServer, GrpcBillingClient],
    status: str,
    reason: str,
    outcome: object,
    attempts: int,
) -> None:
    server, client = billing
    server.answer(RELEASE, status, reason=reason)
    if outcome is BillingUnavailable:
        with pytest.raises(BillingUnavailable):
            client.release("u1", "task_1")
    else:
        assert client.release("u1", "task_1") is outcome
    assert server.calls[RELEASE] == attempts


def test_capture_answers(billing: tuple[ScriptedServer, GrpcBillingClient]) -> None:
    server, client = billing
    client.capture("u1", "task_1")  # no error: captured
    server.answer(CAPTURE, "FAILED_PRECONDITION", reason="HOLD_ALREADY_RELEASED")
    client.capture("u1", "task_1")  # no error: already settled counts as done
    assert server.calls[CAPTURE] == 1
    server.answer(CAPTURE, "UNAVAILABLE")
    with pytest.raises(BillingUnavailable):
        client.capture("u1", "task_1")
    assert server.calls[CAPTURE] == 3

"""Issue 9 #12: the shared client helper reads every status once — category, ErrorInfo, which
statuses are transient — and only transient statuses on idempotent calls are retried. A real gRPC
server on port 0 answers each status. (The gateway's clients of the helper are tested in
tests/gateway/integration/test_grpc_adapters.py.)"""

from __future__ import annotations

import socket
import time
from typing import Any

import grpc
import grpc.aio
import pytest
from atelier_common.grpc_client import (
    CATEGORY_BY_STATUS,
    ErrorCategory,
    RemoteCallError,
    RetryPolicy,
    call_unary,
    to_problem,
)

from atelier_ports import problems
from tests.common.scripted_grpc import GENERIC, SLOW, ScriptedServer, scripted_server

EXPECTED = {
    "CANCELLED": ErrorCategory.CANCELLED,
    "UNKNOWN": ErrorCategory.FAULT,
    "INVALID_ARGUMENT": ErrorCategory.INVALID,
    "DEADLINE_EXCEEDED": ErrorCategory.TIMEOUT,
    "NOT_FOUND": ErrorCategory.NOT_FOUND,
    "ALREADY_EXISTS": ErrorCategory.CONFLICT,
    "PERMISSION_DENIED": ErrorCategory.DENIED,
    "RESOURCE_EXHAUSTED": ErrorCategory.EXHAUSTED,
    "FAILED_PRECONDITION": ErrorCategory.PRECONDITION,
    "ABORTED": ErrorCategory.CONFLICT,
    "OUT_OF_RANGE": ErrorCategory.INVALID,
    "UNIMPLEMENTED": ErrorCategory.FAULT,
    "INTERNAL": ErrorCategory.FAULT,
    "UNAVAILABLE": ErrorCategory.UNAVAILABLE,
    "DATA_LOSS": ErrorCategory.FAULT,
    "UNAUTHENTICATED": ErrorCategory.UNAUTHENTICATED,
}
TRANSIENT = {"UNAVAILABLE", "DEADLINE_EXCEEDED"}
FAST = RetryPolicy(attempts=3, backoff=0.01)


def test_every_status_has_its_category() -> None:
    names = {code.name for code in grpc.StatusCode if code is not grpc.StatusCode.OK}
    assert set(EXPECTED) == names
    assert set(CATEGORY_BY_STATUS) <= names


def call(server: ScriptedServer, *, idempotent: bool, **kw: Any) -> Any:
    with grpc.insecure_channel(server.address) as channel:
        method = channel.unary_unary(GENERIC, None, None)
        return call_unary(
            method,
            b"",
            service="scripted",
            metadata=(("x-test", "1"),),
            timeout=kw.pop("timeout", 5.0),
            idempotent=idempotent,
            policy=FAST,
            **kw,
        )


@pytest.mark.parametrize("status", sorted(EXPECTED))
def test_each_status_is_read_once_and_only_transient_ones_are_retried(status: str) -> None:
    with scripted_server() as server:
        server.answer(GENERIC, status, reason=f"R_{status}", field="page_token")
        with pytest.raises(RemoteCallError) as err:
            call(server, idempotent=True)
        error = err.value
        assert (error.service, error.status) == ("scripted", status)
        assert error.reason == f"R_{status}" and error.metadata == {"field": "page_token"}
        assert error.category is EXPECTED[status]
        assert error.transient is (status in TRANSIENT)
        assert server.calls[GENERIC] == (3 if status in TRANSIENT else 1)

        server.answer(GENERIC, status, reason=f"R_{status}")
        with pytest.raises(RemoteCallError):
            call(server, idempotent=False)
        assert server.calls[GENERIC] == 1  # a call that is not safe to repeat never is


def test_ok_is_returned() -> None:
    with scripted_server() as server:
        assert call(server, idempotent=True) == b""
        assert server.calls[GENERIC] == 1


def test_a_real_deadline_is_transient_and_the_budget_bounds_the_retries() -> None:
    with scripted_server() as server:
        server.answer(GENERIC, SLOW)
        started = time.monotonic()
        with pytest.raises(RemoteCallError) as err:
            call(server, idempotent=True, timeout=5.0, budget=0.6)
        took = time.monotonic() - started
        assert err.value.status == "DEADLINE_EXCEEDED" and err.value.transient
        assert took < 2.0, took  # not 3 × 5 s


def test_nothing_listening_is_unavailable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with (
        grpc.insecure_channel(f"127.0.0.1:{port}") as channel,
        pytest.raises(RemoteCallError) as err,
    ):
        call_unary(
            channel.unary_unary(GENERIC, None, None),
            b"",
            service="nobody",
            metadata=(),
            timeout=2.0,
            idempotent=True,
            policy=FAST,
        )
    assert err.value.category is ErrorCategory.UNAVAILABLE and err.value.transient


def test_remote_errors_become_the_callers_problems() -> None:
    invalid = to_problem(
        RemoteCallError("billing", "INVALID_ARGUMENT", "bad", "INVALID_PAGE_TOKEN", {"field": "x"})
    )
    assert isinstance(invalid, problems.InvalidArgument)
    assert (invalid.reason, invalid.field, invalid.metadata) == (
        "INVALID_PAGE_TOKEN",
        "x",
        {"field": "x"},
    )
    for status, kind in (
        ("NOT_FOUND", problems.NotFound),
        ("ALREADY_EXISTS", problems.AlreadyExists),
        ("FAILED_PRECONDITION", problems.FailedPrecondition),
        ("RESOURCE_EXHAUSTED", problems.ResourceExhausted),
        ("PERMISSION_DENIED", problems.PermissionDenied),
        ("UNAVAILABLE", problems.Unavailable),
        ("DEADLINE_EXCEEDED", problems.Unavailable),
    ):
        assert isinstance(to_problem(RemoteCallError("s", status, "m")), kind), status
    for status in ("UNAUTHENTICATED", "INTERNAL", "UNKNOWN", "UNIMPLEMENTED", "DATA_LOSS"):
        fault = RemoteCallError("s", status, "m")
        assert to_problem(fault) is fault  # our side is wrong: never "try again later"

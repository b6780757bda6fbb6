"""The billing service as a gRPC client (the ``BillingClient`` port).

Every call carries the internal credential, the task owner's id and the request id, has a
deadline, and — since holds, captures and releases are idempotent by ``request_id`` (the task
id) — is retried on UNAVAILABLE / DEADLINE_EXCEEDED a bounded number of times.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

import grpc
from atelier_common.context import outgoing_metadata
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from atelier.billing.v1 import billing_pb2 as pb
from atelier.billing.v1 import billing_pb2_grpc as pb_grpc
from atelier_tasks.domain.errors import BillingUnavailable, InsufficientCredits

log = logging.getLogger("atelier.tasks.billing")

T = TypeVar("T")
_TRANSIENT = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


def error_reason(error: grpc.RpcError) -> str:
    """The ErrorInfo reason of a rich status, or ''."""
    try:
        status = rpc_status.from_call(error)  # type: ignore[arg-type]
    except Exception:
        return ""
    if status is None:
        return ""
    for detail in status.details:
        info = error_details_pb2.ErrorInfo()
        if detail.Is(info.DESCRIPTOR):
            detail.Unpack(info)
            return str(info.reason)
    return ""


class GrpcBillingClient:
    def __init__(
        self,
        address: str,
        internal_token: str,
        *,
        timeout: float = 5.0,
        retries: int = 3,
        backoff: float = 0.2,
    ) -> None:
        self._channel = grpc.insecure_channel(address)
        self._stub = pb_grpc.BillingServiceStub(self._channel)
        self._token = internal_token
        self._timeout = timeout
        self._retries = retries
        self._backoff = backoff

    def close(self) -> None:
        self._channel.close()

    def hold(self, user_id: str, request_id: str, amount: int, reference: str) -> None:
        request = pb.HoldCreditsRequest(request_id=request_id, amount=amount, reference=reference)
        try:
            self._call(self._stub.HoldCredits, request, user_id, request_id)
        except grpc.RpcError as exc:
            if exc.code() is grpc.StatusCode.FAILED_PRECONDITION and (
                error_reason(exc) == "INSUFFICIENT_CREDITS"
            ):
                raise InsufficientCredits(
                    "not enough credits for this task", metadata={"required": str(amount)}
                ) from exc
            if exc.code() is grpc.StatusCode.NOT_FOUND:  # no billing account yet: nothing to spend
                raise InsufficientCredits(
                    "not enough credits for this task", metadata={"required": str(amount)}
                ) from exc
            raise BillingUnavailable(f"billing refused the hold: {exc.code().name}") from exc

    def capture(self, user_id: str, request_id: str) -> None:
        self._settle(self._stub.CaptureHold, pb.CaptureHoldRequest(request_id=request_id), user_id)

    def release(self, user_id: str, request_id: str) -> None:
        self._settle(self._stub.ReleaseHold, pb.ReleaseHoldRequest(request_id=request_id), user_id)

    def _settle(self, method: Callable[..., Any], request: Any, user_id: str) -> None:
        try:
            self._call(method, request, user_id, request.request_id)
        except grpc.RpcError as exc:
            code = exc.code()
            if code in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION):
                # No such hold (never placed) or already settled the other way: nothing more
                # this side can do; logged for the operator, not retried forever.
                log.warning(
                    "billing settlement for %s answered %s (%s)",
                    request.request_id,
                    code.name,
                    error_reason(exc),
                )
                return
            raise BillingUnavailable(f"billing settlement failed: {code.name}") from exc

    def _call(self, method: Callable[..., T], request: Any, user_id: str, request_id: str) -> T:
        metadata = outgoing_metadata(self._token, user_id=user_id, request_id=None)
        attempt = 0
        while True:
            try:
                return method(request, metadata=metadata, timeout=self._timeout)
            except grpc.RpcError as exc:
                attempt += 1
                if exc.code() not in _TRANSIENT:
                    raise
                if attempt >= self._retries:
                    raise BillingUnavailable(f"billing unavailable ({exc.code().name})") from exc
                time.sleep(self._backoff * attempt)

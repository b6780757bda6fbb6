"""The billing service as a gRPC client (the ``BillingClient`` port).

Every call carries the internal credential, the task owner's id and the request id and has a
deadline. Statuses are read by the shared ``atelier_common.grpc_client`` helper: holds, captures
and releases are idempotent by ``request_id`` (the task id), so they are retried on the transient
statuses (UNAVAILABLE, DEADLINE_EXCEEDED) only, within the time the caller has; every other
status is billing's answer and is translated once, here, never retried.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import grpc
from atelier_common.context import outgoing_metadata
from atelier_common.grpc_client import (
    ErrorCategory,
    RemoteCallError,
    RetryPolicy,
    call_unary,
    translate,
)

from atelier.billing.v1 import billing_pb2 as pb
from atelier.billing.v1 import billing_pb2_grpc as pb_grpc
from atelier_tasks.domain.errors import BillingRefused, BillingUnavailable, InsufficientCredits

log = logging.getLogger("atelier.tasks.billing")

SERVICE = "billing"


def error_reason(error: grpc.RpcError) -> str:
    """The ErrorInfo reason of a failed call, or '' (kept for tests and tools)."""
    return translate(SERVICE, error).reason


RECONNECT_BACKOFF_MS = 2000


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
        # A restarted billing is reached again within seconds: gRPC's default reconnect backoff
        # grows to 2 minutes while it is down, failing every call fast meanwhile.
        self._channel = grpc.insecure_channel(
            address, options=[("grpc.max_reconnect_backoff_ms", RECONNECT_BACKOFF_MS)]
        )
        self._stub = pb_grpc.BillingServiceStub(self._channel)
        self._token = internal_token
        self._timeout = timeout
        self._policy = RetryPolicy(attempts=max(retries, 1), backoff=backoff)

    def close(self) -> None:
        self._channel.close()

    def hold(
        self,
        user_id: str,
        request_id: str,
        amount: int,
        reference: str,
        budget: float | None = None,
    ) -> None:
        request = pb.HoldCreditsRequest(request_id=request_id, amount=amount, reference=reference)
        try:
            self._call(self._stub.HoldCredits, request, user_id, budget)
        except RemoteCallError as exc:
            if exc.transient:
                raise BillingUnavailable(f"billing unavailable ({exc.status})") from exc
            if (
                exc.category is ErrorCategory.PRECONDITION and exc.reason == "INSUFFICIENT_CREDITS"
            ) or exc.category is ErrorCategory.NOT_FOUND:  # no account yet: nothing to spend
                raise InsufficientCredits(
                    "not enough credits for this task", metadata={"required": str(amount)}
                ) from exc
            # Billing answered and placed nothing (a conflicting request id, a bad amount, a
            # refused credential…): not "in doubt", and repeating it would get the same answer.
            log.error("billing refused the hold for %s: %s %s", request_id, exc.status, exc.reason)
            raise BillingRefused(f"billing refused the hold ({exc.status})") from exc

    def capture(self, user_id: str, request_id: str) -> None:
        self._settle(self._stub.CaptureHold, pb.CaptureHoldRequest(request_id=request_id), user_id)

    def release(self, user_id: str, request_id: str) -> bool:
        return self._settle(
            self._stub.ReleaseHold, pb.ReleaseHoldRequest(request_id=request_id), user_id
        )

    def _settle(self, method: Callable[..., Any], request: Any, user_id: str) -> bool:
        """True when billing settled the hold (now or before); False when it has no such hold."""
        try:
            self._call(method, request, user_id, None)
        except RemoteCallError as exc:
            if exc.category is ErrorCategory.NOT_FOUND:
                return False
            if exc.category is ErrorCategory.PRECONDITION:
                # Already settled the other way: nothing more this side can do; logged for the
                # operator, not retried.
                log.warning(
                    "billing settlement for %s answered %s (%s)",
                    request.request_id,
                    exc.status,
                    exc.reason,
                )
                return True
            if not exc.transient:
                # A fault (bad credential, bug): the settlement is still owed, so the worker's
                # sweep tries again later — loudly.
                log.error(
                    "billing settlement for %s failed: %s %s",
                    request.request_id,
                    exc.status,
                    exc.reason,
                )
            raise BillingUnavailable(f"billing settlement failed: {exc.status}") from exc
        return True

    def _call(
        self, method: Callable[..., Any], request: Any, user_id: str, budget: float | None
    ) -> Any:
        return call_unary(
            method,
            request,
            service=SERVICE,
            metadata=outgoing_metadata(self._token, user_id=user_id, request_id=None),
            timeout=self._timeout,
            idempotent=True,
            policy=self._policy,
            budget=budget,
        )

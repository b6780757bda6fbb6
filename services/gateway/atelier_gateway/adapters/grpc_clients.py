"""gRPC clients of billing and tasks: deadlines on every call, caller metadata, and errors
translated into :class:`RemoteCallError` (status name + ``google.rpc.ErrorInfo`` reason) by the
shared ``atelier_common.grpc_client`` helper, the one place that reads a failed call."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
import grpc.aio
from atelier_common.context import outgoing_metadata
from atelier_common.grpc_client import (
    ErrorCategory,
    RemoteCallError,
    RetryPolicy,
    call_unary,
    raise_as_problem,
    translate,
)
from grpc_health.v1 import health_pb2, health_pb2_grpc

__all__ = [
    "Caller",
    "GrpcBillingAccounts",
    "RemoteCallError",
    "RemoteService",
    "translate_error",
]


@dataclass(frozen=True, slots=True)
class Caller:
    """Who a call is made for (forwarded as metadata)."""

    user_id: str | None
    role: str = "user"
    request_id: str | None = None


def translate_error(service: str, exc: grpc.RpcError) -> RemoteCallError:
    return translate(service, exc)


@dataclass
class RemoteService:
    """An asyncio channel to one service and its generated stub."""

    name: str
    address: str
    internal_token: str
    stub_factory: Callable[[grpc.aio.Channel], Any]
    timeout: float = 5.0
    _channel: grpc.aio.Channel | None = field(default=None, init=False)
    _stub: Any = field(default=None, init=False)

    def _ensure(self) -> Any:
        # Channels belong to the running event loop, so they are made on first use.
        if self._stub is None:
            self._channel = grpc.aio.insecure_channel(
                self.address, options=[("grpc.enable_retries", 1)]
            )
            self._stub = self.stub_factory(self._channel)
        return self._stub

    def metadata(self, caller: Caller) -> tuple[tuple[str, str], ...]:
        return outgoing_metadata(
            self.internal_token, caller.user_id, caller.role, caller.request_id
        )

    async def call(
        self, method: str, request: Any, caller: Caller, timeout: float | None = None
    ) -> Any:
        stub = self._ensure()
        try:
            return await getattr(stub, method)(
                request, metadata=self.metadata(caller), timeout=timeout or self.timeout
            )
        except grpc.aio.AioRpcError as e:
            raise translate_error(self.name, e) from e

    async def stream(
        self, method: str, request: Any, caller: Caller, timeout: float
    ) -> AsyncIterator[Any]:
        stub = self._ensure()
        call = getattr(stub, method)(request, metadata=self.metadata(caller), timeout=timeout)
        try:
            async for item in call:
                yield item
        except grpc.aio.AioRpcError as e:
            raise translate_error(self.name, e) from e
        finally:
            call.cancel()

    async def healthy(self, timeout: float = 1.0) -> bool:
        self._ensure()
        assert self._channel is not None
        stub = health_pb2_grpc.HealthStub(self._channel)
        try:
            reply = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout)
        except grpc.aio.AioRpcError:
            return False
        return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close(None)
        self._channel = None
        self._stub = None


class GrpcBillingAccounts:
    """The ``BillingAccounts`` port over a blocking channel (use cases run in worker threads).

    Both calls are idempotent (one account and bonus per user; contact details overwrite), so
    the transient statuses are retried; billing's refusals become the matching problem
    (``to_problem``) and are never reported as "unavailable".
    """

    def __init__(self, address: str, internal_token: str, timeout: float = 5.0) -> None:
        from atelier.billing.v1 import billing_pb2_grpc

        self._address = address
        self._token = internal_token
        self._timeout = timeout
        self._channel = grpc.insecure_channel(address)
        self._stub = billing_pb2_grpc.BillingServiceStub(self._channel)
        self._policy = RetryPolicy(attempts=2, backoff=0.1)

    def _call(self, method: str, request: Any, user_id: str) -> Any:
        return call_unary(
            getattr(self._stub, method),
            request,
            service="billing",
            metadata=outgoing_metadata(self._token, user_id, "user"),
            timeout=self._timeout,
            idempotent=True,
            policy=self._policy,
            budget=self._timeout,
        )

    def set_up_account(self, user_id: str, email: str | None, name: str | None) -> bool:
        from atelier.billing.v1 import billing_pb2

        request = billing_pb2.SetUpAccountRequest(email=email or "", name=name or "")
        try:
            reply = self._call("SetUpAccount", request, user_id)
        except RemoteCallError as e:
            raise_as_problem(e)
        return bool(reply.created)

    def update_contact(self, user_id: str, email: str | None, name: str | None) -> None:
        from atelier.billing.v1 import billing_pb2

        request = billing_pb2.UpdateAccountContactRequest(email=email or "", name=name or "")
        try:
            self._call("UpdateAccountContact", request, user_id)
        except RemoteCallError as e:
            if e.category is ErrorCategory.NOT_FOUND:
                return  # no billing account yet: it will be created with the new details
            raise_as_problem(e)

    def close(self) -> None:
        self._channel.close()

"""The asyncio side of the gateway's gRPC clients: one channel per service, made on first use,
deadlines on every call, the caller forwarded as metadata, and a failed call translated into
:class:`RemoteCallError` (status name + ``google.rpc.ErrorInfo`` reason) by the shared
``atelier_common.grpc_client`` helper — the one place that reads a failed call.

Methods are passed as the generated stub's own attributes (typed by mypy-protobuf's stubs, checked
against ``UnaryMethod``/``StreamMethod``): a misspelt method is a type error, never a run-time 500.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Sequence
from datetime import UTC, datetime
from typing import Protocol, TypeVar

import grpc
import grpc.aio
from atelier_common.context import outgoing_metadata
from atelier_common.grpc_client import RemoteCallError, translate
from google.protobuf.internal.enum_type_wrapper import EnumTypeWrapper
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from grpc_health.v1 import health_pb2, health_pb2_grpc

from atelier_gateway.application.calls import Caller

Req = TypeVar("Req", contravariant=True)
Resp = TypeVar("Resp", covariant=True)
R = TypeVar("R")
Q = TypeVar("Q")

Metadata = Sequence[tuple[str, str]]


class UnaryMethod(Protocol[Req, Resp]):
    def __call__(self, request: Req, *, metadata: Metadata, timeout: float) -> Awaitable[Resp]: ...


class StreamCall(Protocol[Resp]):
    def __aiter__(self) -> AsyncIterator[Resp]: ...

    def cancel(self) -> bool: ...


class StreamMethod(Protocol[Req, Resp]):
    def __call__(self, request: Req, *, metadata: Metadata, timeout: float) -> StreamCall[Resp]: ...


class AsyncChannel:
    """An asyncio channel to one service (channels belong to the running event loop, so it is
    made on first use and closed with the application)."""

    def __init__(self, service: str, address: str, internal_token: str, timeout: float) -> None:
        self.service = service
        self.address = address
        self._token = internal_token
        self.timeout = timeout
        self._channel: grpc.aio.Channel | None = None

    def channel(self) -> grpc.aio.Channel:
        if self._channel is None:
            self._channel = grpc.aio.insecure_channel(
                self.address, options=[("grpc.enable_retries", 1)]
            )
        return self._channel

    def metadata(self, caller: Caller) -> Metadata:
        return outgoing_metadata(self._token, caller.user_id, caller.role, caller.request_id)

    async def unary(
        self,
        method: UnaryMethod[Q, R],
        request: Q,
        caller: Caller,
        timeout: float | None = None,
    ) -> R:
        try:
            return await method(
                request, metadata=self.metadata(caller), timeout=timeout or self.timeout
            )
        except grpc.aio.AioRpcError as e:
            raise translate(self.service, e) from e

    async def stream(
        self, method: StreamMethod[Q, R], request: Q, caller: Caller, timeout: float
    ) -> AsyncIterator[R]:
        call = method(request, metadata=self.metadata(caller), timeout=timeout)
        try:
            async for item in call:
                yield item
        except grpc.aio.AioRpcError as e:
            raise translate(self.service, e) from e
        finally:
            call.cancel()

    async def healthy(self, timeout: float = 1.0) -> bool:
        stub = health_pb2_grpc.HealthStub(self.channel())
        try:
            reply = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout)
        except grpc.aio.AioRpcError:
            return False
        return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close(None)
        self._channel = None


def enum_name(enum_type: EnumTypeWrapper, value: int, prefix: str) -> str:
    """A wire enum value as the API's lower-case name (``GRANT_SOURCE_PACK`` → ``pack``)."""
    name = str(enum_type.Name(value))
    return name[len(prefix) :].lower() if name.startswith(prefix) else name.lower()


def time_of(message: Message, name: str) -> datetime | None:
    """A ``google.protobuf.Timestamp`` field as an aware UTC datetime, or None when unset."""
    if not message.HasField(name):
        return None
    value: Timestamp = getattr(message, name)
    return value.ToDatetime(tzinfo=UTC)


__all__ = [
    "AsyncChannel",
    "RemoteCallError",
    "StreamMethod",
    "UnaryMethod",
    "enum_name",
    "time_of",
]

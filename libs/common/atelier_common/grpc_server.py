"""The gRPC server factory shared by the services.

One interceptor does three things for every call: checks the internal credential, puts the
caller (user, role, request id) into the call context, and maps domain errors to status codes
through ONE table, with ``google.rpc.ErrorInfo`` details. Anything unexpected becomes INTERNAL
with a generic message; the detail is logged, never sent.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent import futures
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from grpc_status import rpc_status
from pydantic import SecretStr

from atelier_common.context import (
    INTERNAL_TOKEN_KEY,
    REQUEST_ID_KEY,
    USER_ID_KEY,
    USER_ROLE_KEY,
    CallContext,
    reset_current_call,
    set_current_call,
)
from atelier_common.lifecycle import BackgroundLoop
from atelier_ports import problems

log = logging.getLogger("atelier.grpc")

# grpc-stubs types handlers generically; the interceptor works on any request/response types.
Handler = Any

# The one exception → status table (first match wins; subclasses before their bases).
ERROR_TABLE: tuple[tuple[type[problems.DomainError], grpc.StatusCode], ...] = (
    (problems.NotFound, grpc.StatusCode.NOT_FOUND),
    (problems.AlreadyExists, grpc.StatusCode.ALREADY_EXISTS),
    (problems.InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
    (problems.FailedPrecondition, grpc.StatusCode.FAILED_PRECONDITION),
    (problems.ResourceExhausted, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (problems.PermissionDenied, grpc.StatusCode.PERMISSION_DENIED),
    (problems.Unauthenticated, grpc.StatusCode.UNAUTHENTICATED),
    (problems.Unavailable, grpc.StatusCode.UNAVAILABLE),
)


def status_for(exc: problems.DomainError) -> grpc.StatusCode:
    for cls, code in ERROR_TABLE:
        if isinstance(exc, cls):
            return code
    return grpc.StatusCode.INTERNAL


def _rich_status(
    code: grpc.StatusCode, message: str, reason: str, domain: str, metadata: dict[str, str]
) -> grpc.Status:
    info = error_details_pb2.ErrorInfo(reason=reason, domain=domain, metadata=metadata)
    detail = any_pb2.Any()
    detail.Pack(info)
    status = status_pb2.Status(code=getattr(code_pb2, code.name), message=message, details=[detail])
    return rpc_status.to_status(status)


@dataclass(frozen=True, slots=True)
class ServerConfig:
    service_names: Sequence[str]  # full names, for health and reflection
    internal_token: str
    error_domain: str
    max_workers: int = 32
    # Methods callable without an end user (e.g. webhooks, maintenance). Full method names.
    userless_methods: frozenset[str] = frozenset()


class AtelierServerInterceptor(grpc.ServerInterceptor):  # type: ignore[type-arg]
    def __init__(self, config: ServerConfig) -> None:
        self._config = config
        self._token = config.internal_token.encode()

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Handler | None],
        details: grpc.HandlerCallDetails,
    ) -> Handler:
        handler = continuation(details)
        method: str = details.method
        if handler is None or method.startswith("/grpc.health.") or "reflection" in method:
            return handler
        md = {k: v for k, v in (details.invocation_metadata or ()) if isinstance(v, str)}
        token = md.get(INTERNAL_TOKEN_KEY, "")
        if not hmac.compare_digest(token.encode(), self._token):
            return _abort_handler(
                handler, grpc.StatusCode.UNAUTHENTICATED, "missing or invalid internal credential"
            )
        user_id = md.get(USER_ID_KEY) or None
        if user_id is None and method not in self._config.userless_methods:
            return _abort_handler(handler, grpc.StatusCode.UNAUTHENTICATED, "missing end user")
        call = CallContext(
            user_id=user_id, role=md.get(USER_ROLE_KEY, "user"), request_id=md.get(REQUEST_ID_KEY)
        )
        return _wrap(handler, call, self._config.error_domain, method)


def _abort_handler(handler: Handler, code: grpc.StatusCode, message: str) -> Handler:
    def abort(_request: Any, context: grpc.ServicerContext) -> Any:
        context.abort(code, message)

    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(
            abort,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
    return grpc.unary_unary_rpc_method_handler(
        abort,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


def _aborted(context: grpc.ServicerContext) -> bool:
    code = getattr(context, "code", None)
    return callable(code) and code() is not None


def _handle_error(
    exc: BaseException, context: grpc.ServicerContext, domain: str, method: str
) -> None:
    if isinstance(exc, problems.DomainError):
        code = status_for(exc)
        context.abort_with_status(_rich_status(code, exc.message, exc.reason, domain, exc.metadata))
    log.exception("unhandled error in %s", method, exc_info=exc)
    context.abort_with_status(
        _rich_status(grpc.StatusCode.INTERNAL, "internal error", "INTERNAL", domain, {})
    )


def _wrap(handler: Handler, call: CallContext, domain: str, method: str) -> Handler:
    if handler.unary_unary:
        inner = handler.unary_unary

        def unary(request: Any, context: grpc.ServicerContext) -> Any:
            token = set_current_call(call)
            started = time.perf_counter()
            try:
                return inner(request, context)
            except grpc.RpcError:
                raise
            except Exception as exc:  # the one place errors become statuses
                if _aborted(context):  # already aborted by the handler
                    raise
                _handle_error(exc, context, domain, method)
            finally:
                log.debug(
                    "rpc",
                    extra={
                        "fields": {"method": method, "ms": (time.perf_counter() - started) * 1e3}
                    },
                )
                reset_current_call(token)

        return grpc.unary_unary_rpc_method_handler(
            unary,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
    if handler.unary_stream:
        inner_stream = handler.unary_stream

        def stream(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            token = set_current_call(call)
            try:
                yield from inner_stream(request, context)
            except grpc.RpcError:
                raise
            except Exception as exc:
                if _aborted(context):
                    raise
                _handle_error(exc, context, domain, method)
            finally:
                reset_current_call(token)

        return grpc.unary_stream_rpc_method_handler(
            stream,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
    return handler


@dataclass
class RunningServer:
    server: grpc.Server
    port: int
    health: health.HealthServicer

    def stop(self, grace: float | None = 2.0) -> None:
        self.health.enter_graceful_shutdown()
        self.server.stop(grace).wait()


def build_server(
    config: ServerConfig,
    register: Iterable[Callable[[grpc.Server], None]],
    address: str = "127.0.0.1:0",
) -> RunningServer:
    """Build, bind and start a server; returns the bound port (bind port 0 in tests)."""
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=config.max_workers),
        interceptors=[AtelierServerInterceptor(config)],
        options=[("grpc.so_reuseport", 0)],
    )
    for reg in register:
        reg(server)
    health_servicer = health.HealthServicer(experimental_non_blocking=True)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for name in config.service_names:
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    reflection.enable_server_reflection(
        (*config.service_names, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    port = server.add_insecure_port(address)
    server.start()
    return RunningServer(server=server, port=port, health=health_servicer)


class GrpcServiceSettings(Protocol):
    """What a service's settings say about its gRPC server."""

    @property
    def internal_token(self) -> SecretStr: ...

    @property
    def grpc_workers(self) -> int: ...


def start_grpc_service(
    settings: GrpcServiceSettings,
    address: str,
    *,
    service_name: str,
    error_domain: str,
    userless_methods: frozenset[str],
    register: Callable[[grpc.Server], None],
) -> RunningServer:
    """Start one service's server (with health, reflection and the interceptor) on ``address``;
    ``register`` adds the servicer (the generated ``add_XxxServicer_to_server``)."""
    config = ServerConfig(
        service_names=(service_name,),
        internal_token=settings.internal_token.get_secret_value(),
        error_domain=error_domain,
        max_workers=settings.grpc_workers,
        userless_methods=userless_methods,
    )
    return build_server(config, [register], address=address)


class Closeable(Protocol):
    def close(self) -> None: ...


C = TypeVar("C", bound=Closeable)


@dataclass
class ServiceServer(Generic[C]):
    """A service process's running parts: its gRPC server, the background loops beside it (an
    expiry sweep, a worker) and the container they serve, stopped in that order."""

    container: C
    grpc: RunningServer
    loops: tuple[BackgroundLoop, ...] = ()

    @property
    def port(self) -> int:
        return self.grpc.port

    def stop(self) -> None:
        for loop in self.loops:
            loop.stop()
        self.grpc.stop()
        self.container.close()

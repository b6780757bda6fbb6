"""The gRPC server factory shared by the services.

One interceptor does three things for every call: checks the internal credential, puts the
caller (user, role, request id) into the call context, and maps domain errors to status codes
through ONE table, with ``google.rpc.ErrorInfo`` details. Anything unexpected becomes INTERNAL
with a generic message; the detail is logged, never sent.

The server is ``grpc.aio`` on its own event loop thread (uvloop). Servicer methods that are plain
functions (the use cases are synchronous SQLAlchemy) run in a bounded thread pool with the call
context copied in; async generators (server streams) run on the loop and borrow a pool thread
for each blocking step through :func:`offload`.
"""

from __future__ import annotations

import asyncio
import contextvars
import hmac
import inspect
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

import grpc
import grpc.aio
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer as AsyncHealthServicer  # = health.aio
from grpc_reflection.v1alpha import reflection
from grpc_status import rpc_status
from pydantic import SecretStr

from atelier_common.aio import LoopThread
from atelier_common.context import (
    INTERNAL_TOKEN_KEY,
    REQUEST_ID_KEY,
    USER_ID_KEY,
    USER_ROLE_KEY,
    CallContext,
    set_current_call,
)
from atelier_common.lifecycle import BackgroundLoop
from atelier_common.processes import shares_port
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
    # Threads that run the synchronous handlers (the use cases and their database work): the
    # event loop never waits on the database itself. Size it to the engine's pool.
    max_workers: int = 32
    # Methods callable without an end user (e.g. webhooks, maintenance). Full method names.
    userless_methods: frozenset[str] = frozenset()
    # SO_REUSEPORT: several processes of one service share the port (``*_PROCESSES`` > 1). Off
    # for one process, so a second server started by mistake on a taken port fails to bind.
    reuse_port: bool = False


# Each answer names the process that gave it (several processes share one port).
PID_KEY = "x-atelier-pid"

T = TypeVar("T")
_executor: contextvars.ContextVar[Executor | None] = contextvars.ContextVar(
    "atelier_rpc_executor", default=None
)


async def offload(step: Callable[[], T]) -> T:
    """Run a blocking ``step`` (database work) in the serving call's thread pool, with the call
    context, from a coroutine handler (a stream); the event loop keeps serving meanwhile."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_executor.get(), contextvars.copy_context().run, step)


class AtelierServerInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """Runs on the event loop. Synchronous handlers (every servicer method but the streams) run
    in ``executor`` with the call context copied in; coroutine handlers run on the loop."""

    def __init__(self, config: ServerConfig, executor: Executor) -> None:
        self._config = config
        self._token = config.internal_token.encode()
        self._executor = executor
        self._pid = ((PID_KEY, str(os.getpid())),)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        details: grpc.HandlerCallDetails,
    ) -> Handler:
        handler = await continuation(details)
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
        return _wrap(handler, call, self._config.error_domain, method, self._executor, self._pid)


def _abort_handler(handler: Handler, code: grpc.StatusCode, message: str) -> Handler:
    async def abort(_request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        await context.abort(code, message)

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


async def _handle_error(
    exc: BaseException, context: grpc.aio.ServicerContext[Any, Any], domain: str, method: str
) -> None:
    if isinstance(exc, problems.DomainError):
        code = status_for(exc)
        status = _rich_status(code, exc.message, exc.reason, domain, exc.metadata)
    else:
        log.exception("unhandled error in %s", method, exc_info=exc)
        status = _rich_status(grpc.StatusCode.INTERNAL, "internal error", "INTERNAL", domain, {})
    await context.abort(status.code, status.details, status.trailing_metadata)


def _wrap(
    handler: Handler,
    call: CallContext,
    domain: str,
    method: str,
    executor: Executor,
    pid: tuple[tuple[str, str], ...],
) -> Handler:
    # Every RPC is its own asyncio task with its own copy of the context: the call set here is
    # seen by this call only (and copied into the executor's thread for a synchronous handler).
    if handler.unary_unary:
        inner = handler.unary_unary
        blocking = not inspect.iscoroutinefunction(inner)

        async def unary(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            set_current_call(call)
            started = time.perf_counter()
            try:
                if blocking:
                    loop = asyncio.get_running_loop()
                    run = contextvars.copy_context().run
                    response = await loop.run_in_executor(executor, run, inner, request, context)
                else:
                    response = await inner(request, context)
                context.set_trailing_metadata(pid)
                return response
            except grpc.aio.AbortError:
                raise
            except Exception as exc:  # the one place errors become statuses
                await _handle_error(exc, context, domain, method)
            finally:
                if log.isEnabledFor(logging.DEBUG):  # no ``extra`` built below the level
                    ms = (time.perf_counter() - started) * 1e3
                    log.debug("rpc", extra={"fields": {"method": method, "ms": ms}})

        return grpc.unary_unary_rpc_method_handler(
            unary,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
    if handler.unary_stream:
        inner_stream = handler.unary_stream
        if not inspect.isasyncgenfunction(inner_stream):
            raise TypeError(f"{method}: a server stream must be an async generator")

        async def stream(
            request: Any, context: grpc.aio.ServicerContext[Any, Any]
        ) -> AsyncIterator[Any]:
            set_current_call(call)
            _executor.set(executor)
            try:
                async for response in inner_stream(request, context):
                    yield response
            except grpc.aio.AbortError:
                raise
            except Exception as exc:
                await _handle_error(exc, context, domain, method)

        return grpc.unary_stream_rpc_method_handler(
            stream,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
    return handler


@dataclass
class RunningServer:
    """A started ``grpc.aio`` server on its own event loop thread, driven from synchronous code
    (the command line, tests): ``port`` is the bound port, ``stop`` drains and stops."""

    server: grpc.aio.Server
    port: int
    health: AsyncHealthServicer
    runner: LoopThread
    executor: ThreadPoolExecutor

    def stop(self, grace: float | None = 2.0) -> None:
        if self.runner.loop.is_closed():
            return
        try:
            self.runner.run(self._stop(grace))
        finally:
            self.executor.shutdown(wait=True, cancel_futures=True)
            self.runner.close()

    async def _stop(self, grace: float | None) -> None:
        # Not serving from now on (health checks say so), then in-flight calls get ``grace``.
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)


async def _start(
    config: ServerConfig,
    register: Iterable[Callable[[grpc.aio.Server], None]],
    address: str,
    executor: ThreadPoolExecutor,
) -> tuple[grpc.aio.Server, int, AsyncHealthServicer]:
    server = grpc.aio.server(
        migration_thread_pool=executor,
        interceptors=[AtelierServerInterceptor(config, executor)],
        options=[("grpc.so_reuseport", 1 if config.reuse_port else 0)],
    )
    for reg in register:
        reg(server)
    health_servicer = AsyncHealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for name in config.service_names:
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    reflection.enable_server_reflection(
        (*config.service_names, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    port = server.add_insecure_port(address)
    await server.start()
    return server, port, health_servicer


def build_server(
    config: ServerConfig,
    register: Iterable[Callable[[grpc.aio.Server], None]],
    address: str = "127.0.0.1:0",
) -> RunningServer:
    """Build, bind and start a server on a new event loop thread; returns the bound port (bind
    port 0 in tests)."""
    runner = LoopThread(f"grpc-{config.error_domain}")
    executor = ThreadPoolExecutor(
        max_workers=config.max_workers, thread_name_prefix=f"rpc-{config.error_domain}"
    )
    try:
        server, port, health_servicer = runner.run(_start(config, register, address, executor))
    except BaseException:
        executor.shutdown(wait=False)
        runner.close()
        raise
    return RunningServer(
        server=server, port=port, health=health_servicer, runner=runner, executor=executor
    )


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
    register: Callable[[grpc.aio.Server], None],
) -> RunningServer:
    """Start one service's server (with health, reflection and the interceptor) on ``address``;
    ``register`` adds the servicer (the generated ``add_XxxServicer_to_server``)."""
    config = ServerConfig(
        service_names=(service_name,),
        internal_token=settings.internal_token.get_secret_value(),
        error_domain=error_domain,
        max_workers=settings.grpc_workers,
        userless_methods=userless_methods,
        reuse_port=shares_port(),
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

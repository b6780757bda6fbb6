"""The aiohttp application factory."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import aiohttp_cors
from aiohttp import web

from atelier_gateway.bootstrap import GatewayContainer
from atelier_gateway.entrypoints.http import (
    admin_routes,
    archive_routes,
    auth_routes,
    billing_routes,
    docs,
    files_routes,
    ops,
    phone_routes,
    sandbox,
    security_headers,
    tasks_routes,
    webhooks,
    workbench,
)
from atelier_gateway.entrypoints.http.context import CONTAINER, METRICS, OPEN_STREAMS, Metrics
from atelier_gateway.entrypoints.http.idempotent import IDEMPOTENCY_HEADER
from atelier_gateway.entrypoints.http.middleware import observe, problems, rate_limit
from atelier_gateway.entrypoints.http.session_cookie import COOKIE_HEADER

# What a browser on an allowed origin may send and read (CORS).
CORS_REQUEST_HEADERS = (
    "Authorization",
    IDEMPOTENCY_HEADER,
    "Last-Event-ID",
    "Content-Type",
    COOKIE_HEADER,
)
CORS_EXPOSED_HEADERS = ("X-Request-ID", "Retry-After", "Idempotent-Replayed", "Location")
CORS_METHODS = ("GET", "POST", "PATCH", "DELETE")


def create_app(container: GatewayContainer) -> web.Application:
    # Rate limits set to 0 per minute are off: then requests do not pass through that middleware.
    limited = container.rate_limit.enabled or container.auth_rate_limit.enabled
    app = web.Application(
        middlewares=[observe, problems, *([rate_limit] if limited else [])],
        client_max_size=container.settings.gateway_max_body_bytes,
    )
    app[CONTAINER] = container
    app[METRICS] = Metrics()
    app[OPEN_STREAMS] = set()
    workbench.install(app)
    for table in (
        auth_routes.routes,
        phone_routes.routes,
        billing_routes.routes,
        files_routes.routes,
        webhooks.routes,
        sandbox.routes,
        tasks_routes.routes,
        admin_routes.routes,
        archive_routes.routes,
        ops.routes,
        docs.routes,
        workbench.routes,
    ):
        app.add_routes(table)
    allow_cors(app, cors_origins(container.settings.gateway_cors_origins))
    security_headers.install(app)

    async def follow_task_changes(_app: web.Application) -> AsyncIterator[None]:
        # One change feed per process keeps its task cache fresh (off when the cache is).
        follower = None
        if container.task_reads.enabled:
            follower = asyncio.create_task(container.follow_task_changes.run())
        yield
        if follower is not None:
            follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await follower

    async def close(_app: web.Application) -> None:
        await container.billing.close()
        await container.tasks.close()
        container.close()

    app.on_shutdown.append(tasks_routes.close_open_streams)
    app.cleanup_ctx.append(follow_task_changes)
    app.on_cleanup.append(close)
    return app


def cors_origins(setting: str) -> list[str]:
    """``GATEWAY_CORS_ORIGINS``: comma-separated origins; empty means same origin only."""
    return [o.strip().rstrip("/") for o in setting.split(",") if o.strip()]


def allow_cors(app: web.Application, origins: list[str]) -> None:
    """Answer preflights and add CORS headers for the listed origins only (credentials
    included); any other origin gets no CORS header, so its browser keeps the answer from it."""
    if not origins:
        return
    options = aiohttp_cors.ResourceOptions(  # type: ignore[no-untyped-call]
        allow_credentials=True,
        allow_headers=CORS_REQUEST_HEADERS,
        expose_headers=CORS_EXPOSED_HEADERS,
        allow_methods=CORS_METHODS,
        max_age=600,
    )
    cors = aiohttp_cors.setup(app, defaults={origin: options for origin in origins})
    for route in list(app.router.routes()):
        if route.method in ("HEAD", "OPTIONS"):
            continue
        cors.add(route)

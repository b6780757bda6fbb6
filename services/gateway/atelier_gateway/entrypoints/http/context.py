"""Typed application keys and per-request helpers shared by the route modules."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

from aiohttp import web
from atelier_common.context import CallContext, set_current_call
from prometheus_client import CollectorRegistry, Counter, Histogram

from atelier_gateway.application.calls import Caller
from atelier_gateway.bootstrap import GatewayContainer
from atelier_gateway.domain.errors import InvalidAccessToken
from atelier_gateway.entrypoints.http.problems import Problem, from_domain_error

T = TypeVar("T")


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "atelier_gateway_http_requests",
            "HTTP requests by route and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "atelier_gateway_http_request_duration_seconds",
            "HTTP request latency by route",
            ["method", "route"],
            registry=self.registry,
        )
        self.task_outcomes = Counter(
            "atelier_gateway_task_outcomes",
            "Terminal task statuses seen by the gateway (live events and reads)",
            ["status"],
            registry=self.registry,
        )
        self.webhooks = Counter(
            "atelier_gateway_webhooks",
            "Webhook deliveries by provider and HTTP status",
            ["provider", "status"],
            registry=self.registry,
        )


CONTAINER = web.AppKey("container", GatewayContainer)
METRICS = web.AppKey("metrics", Metrics)
OPEN_STREAMS = web.AppKey("open_streams", set[asyncio.Task[Any]])
REQUEST_ID = web.RequestKey("request_id", str)
CALLER = web.RequestKey("caller", Caller)


def container(request: web.Request) -> GatewayContainer:
    return request.app[CONTAINER]


def request_id(request: web.Request) -> str | None:
    return request.get(REQUEST_ID)


async def in_thread(request: web.Request, fn: Callable[..., T], *args: object) -> T:
    """Run blocking core code (SQLAlchemy, Argon2) off the event loop."""
    return await asyncio.to_thread(fn, *args)


async def authenticate(request: web.Request) -> Caller:
    if CALLER in request:
        return request[CALLER]
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    # A JWT is ASCII; anything else (including undecodable header bytes) is not a token.
    if scheme.lower() != "bearer" or not token.strip() or not token.isascii():
        raise Problem(
            401,
            "unauthenticated",
            "Not authenticated",
            "missing bearer token",
            headers={"WWW-Authenticate": "Bearer"},
        )
    try:
        claims = container(request).authenticate(token.strip())
    except InvalidAccessToken as e:
        problem = from_domain_error(e)
        problem.headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
        raise problem from e
    caller = Caller(user_id=claims.user_id, role=claims.role.value, request_id=request_id(request))
    request[CALLER] = caller
    # Log lines of the rest of this request carry the user (the observe middleware resets it).
    set_current_call(
        CallContext(user_id=caller.user_id, role=caller.role, request_id=caller.request_id)
    )
    return caller


async def optional_caller(request: web.Request) -> Caller | None:
    if "Authorization" not in request.headers:
        return None
    return await authenticate(request)


async def require_admin(request: web.Request) -> Caller:
    caller = await authenticate(request)
    if caller.role != "admin":
        raise Problem(403, "forbidden", "Forbidden", "administrators only")
    return caller

"""Middlewares: request id + JSON access log + metrics, and errors → problem+json."""

from __future__ import annotations

import hashlib
import logging
import math
import re
import secrets
import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from atelier_common.context import CallContext, reset_current_call, set_current_call
from atelier_common.grpc_client import RemoteCallError

from atelier_gateway.entrypoints.http.context import CALLER, CONTAINER, METRICS, REQUEST_ID
from atelier_gateway.entrypoints.http.i18n import preferred_language
from atelier_gateway.entrypoints.http.problems import (
    Problem,
    from_domain_error,
    from_remote_error,
    problem_response,
)
from atelier_ports.problems import DomainError

log = logging.getLogger("atelier.gateway.http")
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _route_name(request: web.Request) -> str:
    info = request.match_info.route.resource
    return info.canonical if info is not None else "unmatched"


@web.middleware
async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
    incoming = request.headers.get("X-Request-ID", "")
    rid = incoming if _SAFE_REQUEST_ID.match(incoming) else secrets.token_hex(16)
    request[REQUEST_ID] = rid
    token = set_current_call(CallContext(user_id=None, role="user", request_id=rid))
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        if not response.prepared:
            response.headers["X-Request-ID"] = rid
        return response
    except web.HTTPException as e:
        status = e.status
        raise
    finally:
        elapsed = time.perf_counter() - started
        route = _route_name(request)
        metrics = request.app[METRICS]
        metrics.requests.labels(request.method, route, str(status)).inc()
        metrics.latency.labels(request.method, route).observe(elapsed)
        if log.isEnabledFor(logging.INFO):  # the access log's fields only when it is written
            caller = request.get(CALLER)
            log.info(
                "request",
                extra={
                    "fields": {
                        "method": request.method,
                        "route": route,
                        "status": status,
                        "ms": round(elapsed * 1000, 2),
                        "user_id": getattr(caller, "user_id", None),
                    }
                },
            )
        reset_current_call(token)


_UNLIMITED_PREFIXES = ("/healthz", "/readyz", "/metrics", "/webhooks/")
_AUTH_PREFIX = "/v1/auth/"


@web.middleware
async def rate_limit(request: web.Request, handler: Handler) -> web.StreamResponse:
    """429 ``rate_limited`` past the budget: per user when a token is sent, else per address."""
    path = request.path
    if path.startswith(_UNLIMITED_PREFIXES):
        return await handler(request)
    c = request.app[CONTAINER]
    auth = path.startswith(_AUTH_PREFIX) and request.method == "POST"
    if not c.rate_limit.enabled and not (auth and c.auth_rate_limit.enabled):
        return await handler(request)  # limits off (0 per minute): no key to make
    client = client_address(request, c.settings.gateway_trust_forwarded_for)
    checks = []
    if c.rate_limit.enabled:
        checks.append((c.rate_limit, _client_key(request, client)))
    if auth and c.auth_rate_limit.enabled:
        checks.append((c.auth_rate_limit, f"auth:{client}"))
    for limiter, key in checks:
        wait = limiter.allow(key)
        if wait > 0:
            raise Problem(
                429,
                "rate_limited",
                "Too many requests",
                "slow down and retry later",
                headers={"Retry-After": str(max(1, math.ceil(wait)))},
            )
    return await handler(request)


def client_address(request: web.Request, trust_forwarded_for: bool) -> str:
    if trust_forwarded_for:
        # The proxy appends the address it saw; earlier entries are the client's own claims.
        hops = [h.strip() for h in request.headers.get("X-Forwarded-For", "").split(",")]
        if hops and hops[-1]:
            return hops[-1]
    return request.remote or "unknown"


def _client_key(request: web.Request, client: str) -> str:
    # The bearer token (hashed) identifies a user without verifying it here; unverified tokens
    # only ever share a budget with themselves.
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("bearer ") and len(header) < 4096:
        # Header bytes that are not UTF-8 arrive as surrogate escapes: hash them as they came.
        digest = hashlib.sha256(header.encode("utf-8", "surrogateescape")).hexdigest()
        return "tok:" + digest[:32]
    return f"ip:{client}"


@web.middleware
async def problems(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except Problem as p:
        return _answer(p, request)
    except DomainError as e:
        return _answer(from_domain_error(e), request)
    except RemoteCallError as e:
        problem = from_remote_error(e)
        if problem.status >= 500:
            log.warning("upstream error: %s", e)
        return _answer(problem, request)
    except web.HTTPRequestEntityTooLarge:
        return _answer(_TOO_LARGE, request)
    except web.HTTPMethodNotAllowed as e:
        allow = ",".join(sorted(e.allowed_methods))
        return _answer(_not_allowed(allow), request)
    except web.HTTPNotFound:
        return _answer(Problem(404, "not_found", "Not found"), request)
    except web.HTTPException:
        raise  # redirects and the like
    except Exception:
        log.exception("unhandled error")
        return _answer(_INTERNAL, request)


_TOO_LARGE = Problem(413, "payload_too_large", "Request body too large")
_INTERNAL = Problem(500, "internal", "Internal error", "internal error")


def _not_allowed(allow: str) -> Problem:
    return Problem(405, "method_not_allowed", "Method not allowed", headers={"Allow": allow})


def _answer(problem: Problem, request: web.Request) -> web.Response:
    """The problem response, its ``detail`` in the language the client asked for."""
    accept = request.headers.get("Accept-Language")
    language = preferred_language(accept) if accept else "en"
    response = problem_response(problem, language)
    response.headers["Vary"] = "Accept-Language"
    if language != "en":
        response.headers["Content-Language"] = "zh-CN"
    return _with_id(response, request)


def _with_id(response: web.Response, request: web.Request) -> web.Response:
    rid = request.get(REQUEST_ID)
    if rid is not None:
        response.headers["X-Request-ID"] = rid
    return response

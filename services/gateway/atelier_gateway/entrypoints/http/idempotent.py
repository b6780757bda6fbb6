"""``Idempotency-Key`` handling shared by POST /v1/orders and POST /v1/tasks (F27)."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable

from aiohttp import web

from atelier_gateway.application.calls import Caller
from atelier_gateway.entrypoints.http.context import container, in_thread

IDEMPOTENCY_HEADER = "Idempotency-Key"


def backend_request_id(caller: Caller, key: str, scope: str) -> str:
    """The idempotency key handed to the owning service: stable per user, key and route."""
    digest = hashlib.sha256(f"{caller.user_id}\n{scope}\n{key}".encode()).hexdigest()
    return f"idem_{digest[:40]}"


async def run_idempotent(
    request: web.Request,
    caller: Caller,
    scope: str,
    body: bytes,
    produce: Callable[[str | None], Awaitable[web.Response]],
) -> web.Response:
    """Run ``produce(request_id)`` once per key; a retry replays the first 2xx response."""
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if key is None:
        return await produce(None)
    assert caller.user_id is not None
    svc = container(request).idempotency
    stored = await in_thread(request, svc.begin, caller.user_id, key, scope, body)
    if stored is not None:
        return web.Response(
            status=stored.status,
            body=stored.body,
            content_type="application/json",
            headers={"Idempotent-Replayed": "true"},
        )
    try:
        response = await produce(backend_request_id(caller, key, scope))
    except BaseException:
        await in_thread(request, svc.abandon, caller.user_id, key)
        raise
    if 200 <= response.status < 300 and isinstance(response.body, bytes):
        await in_thread(request, svc.complete, caller.user_id, key, response.status, response.body)
    else:
        await in_thread(request, svc.abandon, caller.user_id, key)
    return response

"""Operations: liveness, readiness, Prometheus metrics and the OpenAPI document."""

from __future__ import annotations

import asyncio

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from atelier_gateway.entrypoints.http.context import METRICS, container, in_thread
from atelier_gateway.entrypoints.http.jsonio import json_response
from atelier_gateway.entrypoints.http.openapi import openapi_document

routes = web.RouteTableDef()


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


def _database_ok(request: web.Request) -> bool:
    try:
        with container(request).engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception:
        return False
    return True


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    c = container(request)
    db, billing, tasks = await asyncio.gather(
        in_thread(request, _database_ok, request), c.billing.healthy(), c.tasks.healthy()
    )
    checks = {"database": db, "billing": billing, "tasks": tasks}
    ready = all(checks.values())
    return json_response(
        {"status": "ready" if ready else "not_ready", "checks": checks},
        status=200 if ready else 503,
    )


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[METRICS].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


@routes.get("/v1/openapi.json")
async def openapi(request: web.Request) -> web.Response:
    return json_response(
        openapi_document(request.app, container(request).settings.gateway_public_url)
    )

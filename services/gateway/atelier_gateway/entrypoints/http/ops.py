"""Operations: liveness, readiness, Prometheus metrics, the OpenAPI document and Swagger UI."""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from atelier_gateway.entrypoints.http.context import METRICS, container, in_thread
from atelier_gateway.entrypoints.http.contract import Operation, ResponseModel, operation, respond
from atelier_gateway.entrypoints.http.jsonio import json_response
from atelier_gateway.entrypoints.http.openapi import openapi_document

routes = web.RouteTableDef()


class Health(ResponseModel):
    status: Literal["ok"]


class Readiness(ResponseModel):
    status: Literal["ready", "not_ready"]
    checks: dict[str, bool]


@operation(routes, "GET", "/healthz", Operation("Liveness", response=Health, auth="none"))
async def healthz(request: web.Request) -> web.Response:
    return respond(Health(status="ok"))


def _database_ok(request: web.Request) -> bool:
    try:
        with container(request).engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception:
        return False
    return True


@operation(
    routes,
    "GET",
    "/readyz",
    Operation(
        "Readiness (database, billing, tasks); 503 while one is unreachable",
        response=Readiness,
        also=(503,),
        auth="none",
    ),
)
async def readyz(request: web.Request) -> web.Response:
    c = container(request)
    db, billing, tasks = await asyncio.gather(
        in_thread(request, _database_ok, request), c.billing.healthy(), c.tasks.healthy()
    )
    checks = {"database": db, "billing": billing, "tasks": tasks}
    ready = all(checks.values())
    return respond(
        Readiness(status="ready" if ready else "not_ready", checks=checks),
        status=200 if ready else 503,
    )


@operation(
    routes,
    "GET",
    "/metrics",
    Operation(
        "Prometheus metrics",
        media_type="text/plain",
        auth="none",
        fuzz=False,
    ),
)
async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[METRICS].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


@operation(
    routes,
    "GET",
    "/v1/openapi.json",
    Operation("This document (OpenAPI 3.1)", auth="none", fuzz=False),
)
async def openapi(request: web.Request) -> web.Response:
    document: dict[str, Any] = openapi_document(request.app, container(request).settings)
    return json_response(document)

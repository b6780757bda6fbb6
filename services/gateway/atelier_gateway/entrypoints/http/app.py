"""The aiohttp application factory."""

from __future__ import annotations

from aiohttp import web

from atelier_gateway.bootstrap import Container
from atelier_gateway.entrypoints.http import (
    auth_routes,
    billing_routes,
    files_routes,
    ops,
    sandbox,
    tasks_routes,
    webhooks,
)
from atelier_gateway.entrypoints.http.context import CONTAINER, METRICS, OPEN_STREAMS, Metrics
from atelier_gateway.entrypoints.http.middleware import observe, problems, rate_limit


def create_app(container: Container) -> web.Application:
    app = web.Application(
        middlewares=[observe, problems, rate_limit],
        client_max_size=container.settings.gateway_max_body_bytes,
    )
    app[CONTAINER] = container
    app[METRICS] = Metrics()
    app[OPEN_STREAMS] = set()
    for table in (
        auth_routes.routes,
        billing_routes.routes,
        files_routes.routes,
        webhooks.routes,
        sandbox.routes,
        tasks_routes.routes,
        ops.routes,
    ):
        app.add_routes(table)

    async def close(_app: web.Application) -> None:
        await container.billing.close()
        await container.tasks.close()
        container.close()

    app.on_shutdown.append(tasks_routes.close_open_streams)
    app.on_cleanup.append(close)
    return app

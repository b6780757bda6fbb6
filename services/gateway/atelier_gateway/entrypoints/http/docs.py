"""Swagger UI at ``/docs``, served offline from the assets the ``swagger-ui-py`` package ships.

(``swagger-ui-bundle``, the package the issue names, ships Swagger UI 4.15, which refuses to render
OpenAPI 3.1 documents; ``swagger-ui-py`` ships Swagger UI 5, which renders them. Only its static
files are used: no template engine, no CDN.)
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from aiohttp import web

from atelier_gateway.entrypoints.http.contract import Operation, operation

routes = web.RouteTableDef()
ASSETS_PATH = "/docs/assets"
_ASSETS = ("swagger-ui.css", "swagger-ui-bundle.js", "swagger-ui-standalone-preset.js")

_PAGE = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Atelier API</title>
<link rel="stylesheet" href="{ASSETS_PATH}/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="{ASSETS_PATH}/swagger-ui-bundle.js"></script>
<script src="{ASSETS_PATH}/swagger-ui-standalone-preset.js"></script>
<script src="/docs/init.js"></script>
</body></html>
"""

_INIT = """window.onload = function () {
  window.ui = SwaggerUIBundle({
    url: "/v1/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
    layout: "StandaloneLayout",
  });
};
"""


def assets_dir() -> Path:
    """The directory of Swagger UI's static files inside the installed package."""
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the swagger-ui-py package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "static"


@operation(
    routes,
    "GET",
    "/docs",
    Operation("Swagger UI (offline)", media_type="text/html", auth="none", fuzz=False),
)
async def swagger_ui(request: web.Request) -> web.Response:
    return web.Response(text=_PAGE, content_type="text/html")


@operation(
    routes,
    "GET",
    "/docs/init.js",
    Operation(
        "Swagger UI's start-up script", media_type="text/javascript", auth="none", fuzz=False
    ),
)
async def swagger_init(request: web.Request) -> web.Response:
    return web.Response(text=_INIT, content_type="text/javascript")


@operation(
    routes,
    "GET",
    ASSETS_PATH + "/{name}",
    Operation(
        "Swagger UI's scripts and styles",
        media_type="application/octet-stream",
        auth="none",
        fuzz=False,
    ),
)
async def swagger_asset(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    if name not in _ASSETS:
        raise web.HTTPNotFound()
    return web.FileResponse(assets_dir() / name, headers={"Cache-Control": "public, max-age=86400"})

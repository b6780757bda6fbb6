"""Security headers on every response of the gateway (API, files, pages, problems, streams).

Set just before a response's headers go out, and only where the route did not set its own (the
workbench, the sandbox checkout page and the Swagger UI page choose theirs):

- ``X-Content-Type-Options: nosniff``, ``X-Frame-Options: DENY``, ``Referrer-Policy:
  no-referrer`` everywhere; ``Strict-Transport-Security`` when the public URL is https;
- a Content-Security-Policy: on HTML, scripts and styles from this origin only (no inline
  script, no ``eval``) and no framing; on everything else (JSON, images, zips, SVG) nothing may
  run or load at all, so an answer opened as a document cannot become a page.
"""

from __future__ import annotations

from aiohttp import web

from atelier_gateway.entrypoints.http.context import CONTAINER

HTML_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
# Swagger UI (/docs) sets styles from its scripts: inline styles, never inline scripts.
DOCS_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
OTHER_POLICY = "default-src 'none'; frame-ancestors 'none'; sandbox"
HSTS = "max-age=31536000"

ALWAYS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


def policy_for(path: str, content_type: str) -> str:
    if content_type.split(";")[0].strip().lower() != "text/html":
        return OTHER_POLICY
    if path == "/docs" or path.startswith("/docs/"):
        return DOCS_POLICY
    return HTML_POLICY


async def add_security_headers(request: web.Request, response: web.StreamResponse) -> None:
    headers = response.headers
    for name, value in ALWAYS.items():
        headers.setdefault(name, value)
    headers.setdefault("Content-Security-Policy", policy_for(request.path, response.content_type))
    public_url = request.app[CONTAINER].settings.gateway_public_url
    if public_url.lower().startswith("https://"):
        headers.setdefault("Strict-Transport-Security", HSTS)


def install(app: web.Application) -> None:
    app.on_response_prepare.append(add_security_headers)

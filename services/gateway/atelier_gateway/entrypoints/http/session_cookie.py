"""The refresh token in a cookie, for browsers (HTTP_API.md: "Browser clients may keep the
refresh token in an HttpOnly, SameSite=Strict cookie scoped to the refresh path").

A client asks for it with the request header ``X-Refresh-Token-Cookie: 1`` on sign-up, log-in,
SMS verify, refresh and log-out. The session's refresh token is then set as the cookie
``atelier_refresh`` — ``HttpOnly`` (no script reads it), ``SameSite=Strict`` (no other site's
page sends it), ``Path=/v1/auth`` (sent to refresh and log-out only, never to the rest of the
API), ``Secure`` when ``GATEWAY_PUBLIC_URL`` is https, and expiring with the token — and the
body's ``refresh_token`` is empty. Refresh and log-out then take the token from the cookie.

CSRF: a cookie is used only by a request that carries the custom header (a form or a simple
cross-site request cannot send one; a cross-origin fetch must pass a CORS preflight, which only
the configured origins do), and a request whose ``Origin`` names another origin is refused.
"""

from __future__ import annotations

from dataclasses import replace
from urllib.parse import urlsplit

from aiohttp import web

from atelier_gateway.application.sessions import Session
from atelier_gateway.entrypoints.http.context import container
from atelier_gateway.entrypoints.http.contract import respond
from atelier_gateway.entrypoints.http.presenters import accounts as present
from atelier_gateway.entrypoints.http.problems import Problem

COOKIE_HEADER = "X-Refresh-Token-Cookie"
COOKIE_NAME = "atelier_refresh"
COOKIE_PATH = "/v1/auth"
HEADER_DESCRIPTION = (
    "Send `1` to keep the refresh token in the HttpOnly, SameSite=Strict cookie "
    f"`{COOKIE_NAME}` (Path={COOKIE_PATH}, Secure over https) instead of in the body: the "
    "answer's `refresh_token` is then empty, and refresh and log-out read the cookie (they "
    "need this header to do so)."
)


def wants_cookie(request: web.Request) -> bool:
    return request.headers.get(COOKIE_HEADER, "").strip() in ("1", "true")


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def _check_origin(request: web.Request) -> None:
    origin = request.headers.get("Origin")
    if origin is None:
        return  # same-origin requests of some browsers, and non-browser clients
    settings = container(request).settings
    allowed = {_origin(f"{request.scheme}://{request.host}")}
    if settings.gateway_public_url:
        allowed.add(_origin(settings.gateway_public_url))
    allowed.update(
        _origin(o.strip()) for o in settings.gateway_cors_origins.split(",") if o.strip()
    )
    if origin.strip().lower().rstrip("/") not in allowed:
        raise Problem(403, "forbidden", "Forbidden", "this origin may not use the session cookie")


def cookie_token(request: web.Request) -> str | None:
    """The refresh token of the cookie, for a request that may use it (see the module doc)."""
    if not wants_cookie(request):
        return None
    _check_origin(request)
    token = request.cookies.get(COOKIE_NAME, "").strip()
    return token or None


def _secure(request: web.Request) -> bool:
    return container(request).settings.gateway_public_url.lower().startswith("https://")


def set_cookie(request: web.Request, response: web.StreamResponse, token: str) -> None:
    days = container(request).settings.gateway_refresh_token_days
    response.set_cookie(
        COOKIE_NAME,
        token,
        max_age=days * 86400,
        path=COOKIE_PATH,
        httponly=True,
        secure=_secure(request),
        samesite="Strict",
    )
    response.headers["Cache-Control"] = "no-store"


def clear_cookie(request: web.Request, response: web.StreamResponse) -> None:
    response.set_cookie(
        COOKIE_NAME,
        "",
        max_age=0,
        expires="Thu, 01 Jan 1970 00:00:00 GMT",
        path=COOKIE_PATH,
        httponly=True,
        secure=_secure(request),
        samesite="Strict",
    )


def session_response(request: web.Request, session: Session, status: int = 200) -> web.Response:
    """A session answer: the refresh token in the body, or in the cookie when asked for."""
    if not wants_cookie(request):
        return respond(present.session(session), status=status)
    response = respond(present.session(replace(session, refresh_token="")), status=status)
    set_cookie(request, response, session.refresh_token)
    return response

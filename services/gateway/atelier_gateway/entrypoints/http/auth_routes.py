"""Sign-up, log-in, token refresh, log-out and the profile (F1, F3, F4)."""

from __future__ import annotations

from aiohttp import web

from atelier_gateway.application.auth import ProfileChanges, SignUp
from atelier_gateway.domain.model import MAX_PASSWORD_LENGTH
from atelier_gateway.entrypoints.http import presenters
from atelier_gateway.entrypoints.http.context import (
    authenticate,
    container,
    in_thread,
    require_admin,
)
from atelier_gateway.entrypoints.http.jsonio import (
    json_response,
    opt_object,
    opt_str,
    read_json_object,
    reject_unknown,
    req_str,
)
from atelier_gateway.entrypoints.http.problems import validation_error

routes = web.RouteTableDef()


@routes.post("/v1/auth/signup")
async def signup(request: web.Request) -> web.Response:
    data = await read_json_object(request)
    reject_unknown(data, {"email", "password", "name"})
    cmd = SignUp(
        email=req_str(data, "email", max_len=254),
        password=req_str(data, "password", max_len=MAX_PASSWORD_LENGTH),
        name=opt_str(data, "name", max_len=100) or "",
    )
    session = await in_thread(request, container(request).auth.sign_up, cmd)
    return json_response(presenters.session(session), status=201)


@routes.post("/v1/auth/login")
async def login(request: web.Request) -> web.Response:
    data = await read_json_object(request)
    email = req_str(data, "email", max_len=254)
    password = req_str(data, "password", max_len=MAX_PASSWORD_LENGTH)
    session = await in_thread(request, container(request).auth.log_in, email, password)
    return json_response(presenters.session(session))


@routes.post("/v1/auth/refresh")
async def refresh(request: web.Request) -> web.Response:
    data = await read_json_object(request)
    token = req_str(data, "refresh_token", max_len=200)
    session = await in_thread(request, container(request).auth.refresh, token)
    return json_response(presenters.session(session))


@routes.post("/v1/auth/logout")
async def logout(request: web.Request) -> web.Response:
    data = await read_json_object(request)
    token = req_str(data, "refresh_token", max_len=200)
    await in_thread(request, container(request).auth.log_out, token)
    return web.Response(status=204)


@routes.get("/v1/me")
async def me(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    assert caller.user_id is not None
    user = await in_thread(request, container(request).auth.profile, caller.user_id)
    return json_response(presenters.profile(user))


@routes.patch("/v1/me")
async def update_me(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    assert caller.user_id is not None
    data = await read_json_object(request)
    reject_unknown(data, {"name", "avatar_url", "preferences"})
    if "name" in data and data["name"] is None:
        raise validation_error("name", "name must be a string")
    changes = ProfileChanges(
        name=opt_str(data, "name", max_len=100),
        avatar_url=opt_str(data, "avatar_url", max_len=2000),
        avatar_url_set="avatar_url" in data,
        preferences=opt_object(data, "preferences"),
    )
    user = await in_thread(request, container(request).auth.update_profile, caller.user_id, changes)
    return json_response(presenters.profile(user))


@routes.get("/v1/admin/users")
async def admin_users(request: web.Request) -> web.Response:
    await require_admin(request)
    query = request.query.get("query", "")[:200]
    try:
        offset = int(request.query.get("page_token") or 0)
        size = int(request.query.get("page_size") or 20)
    except ValueError as e:
        raise validation_error("page_token", "invalid paging", status=400) from e
    if size < 1 or size > 100 or offset < 0:
        raise validation_error("page_size", "page_size must be between 1 and 100", status=400)
    users = await in_thread(request, container(request).auth.search_users, query, size + 1, offset)
    more = len(users) > size
    return json_response(
        {
            "items": [presenters.profile(u) for u in users[:size]],
            "next_page_token": str(offset + size) if more else "",
        }
    )

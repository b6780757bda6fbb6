"""Sign-up, log-in, token refresh, log-out, the profile (F1, F3, F4) and the admin user search."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import ConfigDict, Field

from atelier_gateway.application.accounts import Credentials, NewAccount
from atelier_gateway.application.profiles import ProfileChanges, UserSearch
from atelier_gateway.domain.model import MAX_PASSWORD_LENGTH
from atelier_gateway.entrypoints.http.context import (
    authenticate,
    container,
    in_thread,
    require_admin,
)
from atelier_gateway.entrypoints.http.contract import (
    JsonObject,
    Operation,
    PageQuery,
    RequestModel,
    operation,
    query_model,
    read_model,
    respond,
)
from atelier_gateway.entrypoints.http.presenters import accounts as present
from atelier_gateway.entrypoints.http.presenters.accounts import Profile, SessionResponse, UserPage
from atelier_gateway.entrypoints.http.problems import Problem, validation_error
from atelier_gateway.entrypoints.http.session_cookie import (
    COOKIE_HEADER,
    HEADER_DESCRIPTION,
    clear_cookie,
    cookie_token,
    session_response,
    wants_cookie,
)
from atelier_ports.paging import InvalidPageToken, decode_page_token, encode_page_token

routes = web.RouteTableDef()

Email = Field(min_length=1, max_length=254)
Password = Field(min_length=1, max_length=MAX_PASSWORD_LENGTH)

# --- models ------------------------------------------------------------------------------------


class SignUpRequest(RequestModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"email": "ada@example.com", "password": "correct horse battery", "name": "Ada"}
            ]
        }
    )

    email: str = Email
    password: str = Password
    name: str | None = Field(None, max_length=100)


class LogInRequest(RequestModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"email": "ada@example.com", "password": "correct horse battery"}]
        }
    )

    email: str = Email
    password: str = Password


class RefreshTokenRequest(RequestModel):
    refresh_token: str | None = Field(
        None,
        min_length=1,
        max_length=200,
        description=f"Required unless the token is in the cookie (header {COOKIE_HEADER}: 1)",
    )


def _no_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


class ProfileChangesRequest(RequestModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"name": "Ada", "preferences": {"theme": "dark"}}]}
    )

    # Absent means "unchanged"; a name is never null (avatar_url null removes the picture).
    name: str = Field(  # type: ignore[assignment]
        None, max_length=100, json_schema_extra=_no_default
    )
    avatar_url: str | None = Field(None, max_length=2000)
    preferences: JsonObject | None = None


class UserSearchQuery(PageQuery):
    query: str = Field("", max_length=200, description="Part of an email, name or phone")


# --- routes ------------------------------------------------------------------------------------


@operation(
    routes,
    "POST",
    "/v1/auth/signup",
    Operation(
        "Sign up",
        status=201,
        body=SignUpRequest,
        response=SessionResponse,
        auth="none",
        errors=(409,),
        headers=(COOKIE_HEADER,),
        description=HEADER_DESCRIPTION,
    ),
)
async def signup(request: web.Request) -> web.Response:
    body = await read_model(request, SignUpRequest)
    cmd = NewAccount(email=body.email, password=body.password, name=body.name or "")
    result = await in_thread(request, container(request).sign_up, cmd)
    return session_response(request, result, status=201)


@operation(
    routes,
    "POST",
    "/v1/auth/login",
    Operation(
        "Log in",
        body=LogInRequest,
        response=SessionResponse,
        auth="none",
        errors=(401,),
        headers=(COOKIE_HEADER,),
        description=HEADER_DESCRIPTION,
    ),
)
async def login(request: web.Request) -> web.Response:
    body = await read_model(request, LogInRequest)
    cmd = Credentials(email=body.email, password=body.password)
    result = await in_thread(request, container(request).log_in, cmd)
    return session_response(request, result)


@operation(
    routes,
    "POST",
    "/v1/auth/refresh",
    Operation(
        "Rotate the refresh token (the old one stops working)",
        body=RefreshTokenRequest,
        response=SessionResponse,
        auth="none",
        errors=(401, 403),
        headers=(COOKIE_HEADER,),
        description=HEADER_DESCRIPTION
        + " Without a body token, the cookie's is used; an Origin other than this gateway's "
        "and the allowed CORS origins is refused (403).",
    ),
)
async def refresh(request: web.Request) -> web.Response:
    body = await read_model(request, RefreshTokenRequest)
    token = _refresh_token(request, body)
    result = await in_thread(request, container(request).refresh_session, token)
    return session_response(request, result)


def _refresh_token(request: web.Request, body: RefreshTokenRequest) -> str:
    """The body's token, else the cookie's (only with the cookie header: see session_cookie)."""
    if body.refresh_token is not None:
        return body.refresh_token
    token = cookie_token(request)
    if token is not None:
        return token
    if wants_cookie(request):
        raise Problem(401, "unauthenticated", "Not authenticated", "no refresh token in the cookie")
    raise validation_error("refresh_token", "refresh_token is required")


@operation(
    routes,
    "POST",
    "/v1/auth/logout",
    Operation(
        "Log out (revoke the session)",
        status=204,
        body=RefreshTokenRequest,
        auth="none",
        errors=(403,),
        headers=(COOKIE_HEADER,),
        description=HEADER_DESCRIPTION
        + " Without a body token, the cookie's session is revoked and the cookie cleared.",
    ),
)
async def logout(request: web.Request) -> web.Response:
    body = await read_model(request, RefreshTokenRequest)
    token = body.refresh_token if body.refresh_token is not None else cookie_token(request)
    if token is None and not wants_cookie(request):
        raise validation_error("refresh_token", "refresh_token is required")
    if token is not None:
        await in_thread(request, container(request).log_out, token)
    response = web.Response(status=204)
    if wants_cookie(request):
        clear_cookie(request, response)
    return response


@operation(routes, "GET", "/v1/me", Operation("Your profile", response=Profile))
async def me(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    assert caller.user_id is not None
    user = await in_thread(request, container(request).get_profile, caller.user_id)
    return respond(present.profile(user))


@operation(
    routes,
    "PATCH",
    "/v1/me",
    Operation("Edit your profile", body=ProfileChangesRequest, response=Profile),
)
async def update_me(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    assert caller.user_id is not None
    body = await read_model(request, ProfileChangesRequest)
    changes = ProfileChanges(
        user_id=caller.user_id,
        name=body.name,
        avatar_url=body.avatar_url,
        avatar_url_set="avatar_url" in body.model_fields_set,
        preferences=body.preferences,
    )
    user = await in_thread(request, container(request).update_profile, changes)
    return respond(present.profile(user))


_USERS_PAGE = "gateway.admin_users"


@operation(
    routes,
    "GET",
    "/v1/admin/users",
    Operation("Admin: search users", response=UserPage, query=UserSearchQuery, auth="admin"),
)
async def admin_users(request: web.Request) -> web.Response:
    await require_admin(request)
    q = query_model(request, UserSearchQuery)
    offset = 0
    if q.page_token:
        (position,) = decode_page_token(q.page_token, _USERS_PAGE, (int,))
        if not isinstance(position, int) or position < 0:
            raise InvalidPageToken()
        offset = position
    size = q.page_size
    search = UserSearch(query=q.query, limit=size + 1, offset=offset)
    users = await in_thread(request, container(request).search_users, search)
    more = len(users) > size
    next_token = encode_page_token(_USERS_PAGE, offset + size) if more else ""
    return respond(present.user_page(users[:size], next_token))

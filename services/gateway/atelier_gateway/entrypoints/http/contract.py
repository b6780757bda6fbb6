"""The HTTP contract machinery: pydantic models validate requests and shape responses, and each
route declares its operation (models, status, errors) so that the OpenAPI document is generated
from the very models the handlers use (see openapi.py).

The rule for invalid input, everywhere:
- a malformed request (a body that is not JSON, nested too deep, not an object) → 400;
- a bad query parameter (page_size, page_token, a ``status``/``type`` filter, …) → 400
  ``validation_error`` naming the parameter;
- a well-formed JSON body whose fields are wrong (missing, unknown, wrong type, out of range,
  text with a NUL character, nested deeper than MAX_JSON_DEPTH) → 422 ``validation_error``
  naming the field.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeVar

from aiohttp import web
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from atelier_gateway.entrypoints.http.jsonio import json_response, parse_json_object, read_body
from atelier_gateway.entrypoints.http.problems import Problem, validation_error

M = TypeVar("M", bound=BaseModel)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

MAX_JSON_DEPTH = 32
_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")


class RequestModel(BaseModel):
    """A JSON request body: unknown fields refused, types strict (``"1"`` is not an int)."""

    model_config = ConfigDict(extra="forbid", strict=True)


class QueryModel(BaseModel):
    """Query parameters: strings on the wire, so numbers are parsed (lax); unknown ones ignored."""

    model_config = ConfigDict(extra="ignore")


class ResponseModel(BaseModel):
    """A response body: every field always present (``null`` when absent), none undeclared."""

    model_config = ConfigDict(extra="forbid", json_schema_serialization_defaults_required=True)


def _depth(value: Any, level: int = 0) -> int:
    if level > MAX_JSON_DEPTH:
        return level
    if isinstance(value, dict):
        return max((_depth(v, level + 1) for v in value.values()), default=level + 1)
    if isinstance(value, list):
        return max((_depth(v, level + 1) for v in value), default=level + 1)
    return level


def _shallow(value: dict[str, Any]) -> dict[str, Any]:
    if _depth(value) > MAX_JSON_DEPTH:
        raise ValueError(f"nested deeper than {MAX_JSON_DEPTH} levels")
    return value


# A free-form JSON object (preferences, task parameters), bounded in depth.
JsonObject = Annotated[dict[str, Any], AfterValidator(_shallow)]

Timestamp = Annotated[str, Field(json_schema_extra={"format": "date-time"})]


# --- pages -------------------------------------------------------------------------------------


class PageQuery(QueryModel):
    page_size: int = Field(20, ge=1, le=100, description="Items per page (1-100)")
    page_token: str = Field(
        "", max_length=512, description="Opaque token from the previous page's next_page_token"
    )


# --- operations --------------------------------------------------------------------------------

Auth = Literal["none", "optional", "user", "admin"]


@dataclass(frozen=True)
class Operation:
    """What the OpenAPI document says about one route; attached to its handler."""

    summary: str
    status: int = 200
    body: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    query: type[QueryModel] | None = None
    auth: Auth = "user"
    errors: tuple[int, ...] = ()  # problem responses beyond the ones every operation has
    also: tuple[int, ...] = ()  # other statuses answered with the same response model
    media_type: str = "application/json"  # of the success response
    request_media_type: str = "application/json"
    headers: tuple[str, ...] = ()  # optional request headers (Idempotency-Key, Last-Event-ID)
    fuzz: bool = True  # part of the schemathesis run (JSON operations)
    description: str = ""


OPERATION_ATTR = "__atelier_operation__"


def operation(
    table: web.RouteTableDef, method: str, path: str, op: Operation
) -> Callable[[Handler], Handler]:
    """Register ``handler`` for ``method path`` and attach its contract."""

    def register(handler: Handler) -> Handler:
        setattr(handler, OPERATION_ATTR, op)
        table.route(method, path)(handler)
        return handler

    return register


def operation_of(handler: Any) -> Operation | None:
    op = getattr(handler, OPERATION_ATTR, None)
    return op if isinstance(op, Operation) else None


# --- reading requests, writing responses -------------------------------------------------------


def _loc(error: Any) -> str:
    loc = [str(part) for part in error.get("loc", ())]
    return ".".join(loc) or "body"


def _message(error: Any) -> str:
    loc = _loc(error)
    if error.get("type") == "extra_forbidden":
        return f"unknown field {loc}"
    if error.get("type") == "missing":
        return f"{loc} is required"
    return f"{loc}: {error.get('msg', 'invalid')}"


def invalid(exc: ValidationError, status: int) -> Problem:
    first = exc.errors(include_url=False, include_input=False)[0]
    return validation_error(_loc(first), _message(first), status=status)


def _nul_at(value: Any, path: str) -> str | None:
    """Where a NUL character hides in ``value`` (no database text column can store one)."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            inner = f"{path}.{key}" if path else str(key)
            if "\x00" in str(key):
                return path or "body"
            found = _nul_at(item, inner)
            if found is not None:
                return found
    if isinstance(value, list):
        for i, item in enumerate(value):
            found = _nul_at(item, f"{path}.{i}" if path else str(i))
            if found is not None:
                return found
    return None


def body_model(model: type[M], raw: bytes, request: web.Request) -> M:
    data = parse_json_object(request, raw)
    where = _nul_at(data, "")
    if where is not None:
        raise validation_error(where, f"{where} must not contain NUL characters")
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise invalid(e, 422) from None


async def read_model(request: web.Request, model: type[M]) -> M:
    return body_model(model, await read_body(request), request)


def query_model(request: web.Request, model: type[M]) -> M:
    # An empty filter (``?status=``) means no filter.
    data = {k: v for k, v in request.query.items() if v != ""}
    where = _nul_at(data, "")
    if where is not None:
        raise validation_error(where, f"{where} must not contain NUL characters", status=400)
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise invalid(e, 400) from None


def respond(
    body: BaseModel, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return json_response(body.model_dump(mode="json"), status=status, headers=headers)


def path_id(request: web.Request, name: str) -> str:
    value = request.match_info[name]
    if not _ID.match(value):
        # Not an id we could ever have issued: the same answer as someone else's id.
        raise Problem(404, "not_found", "Not found", f"no such {name.removesuffix('_id')}")
    return value

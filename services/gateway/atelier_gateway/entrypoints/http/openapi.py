"""The OpenAPI 3.1 document of the public API, generated from the route table and the pydantic
models each route declares (contract.Operation), never written by hand a second time.

Paths and methods come from the registered routes; request bodies, responses and query
parameters are the JSON schemas of the very models that validate and shape them. A route with no
declared operation and no line in PAGES is reported "(undocumented)" (a test checks for it).
"""

from __future__ import annotations

import re
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, Field
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from atelier_gateway.entrypoints.http.contract import Operation, QueryModel, operation_of
from atelier_gateway.entrypoints.http.idempotent import IDEMPOTENCY_HEADER
from atelier_gateway.entrypoints.http.problems import ProblemBody
from atelier_gateway.entrypoints.http.session_cookie import COOKIE_HEADER, HEADER_DESCRIPTION
from atelier_gateway.settings import GatewaySettings

REF = "#/components/schemas/{model}"
PROBLEM = "application/problem+json"
_ID_PATTERN = "^[A-Za-z0-9_.:-]{1,128}$"


# HTML pages and forms of other modules (sandbox.py) that declare no operation.
class CheckoutTokenQuery(QueryModel):
    token: str = Field(
        description="The signed token of the checkout URL that POST /v1/orders answered; "
        "without a valid one every sandbox page is the same 404 page"
    )


class OrderPageQuery(QueryModel):
    token: str | None = Field(default=None, description="As on the checkout page")
    checkout: Literal["success", "cancel"] | None = Field(
        default=None,
        description="Set by a payment provider's return redirect: without a token the page "
        "says what happens next and nothing about the order",
    )


PAGES: dict[tuple[str, str], Operation] = {
    ("GET", "/"): Operation(
        "The web workbench (its page; the app is client-side, on this API)",
        media_type="text/html",
        auth="none",
        fuzz=False,
    ),
    ("GET", "/assets/{version}/{name}"): Operation(
        "The workbench's scripts, styles and icon (immutable: the version is their digest)",
        media_type="application/octet-stream",
        auth="none",
        fuzz=False,
    ),
    ("GET", "/sandbox/checkout/{order_id}"): Operation(
        "Sandbox checkout page (local market)",
        query=CheckoutTokenQuery,
        media_type="text/html",
        auth="none",
        fuzz=False,
    ),
    ("POST", "/sandbox/checkout/{order_id}"): Operation(
        "Complete a sandbox checkout (form field outcome: paid or failed)",
        status=303,
        query=CheckoutTokenQuery,
        request_media_type="application/x-www-form-urlencoded",
        media_type="text/html",
        auth="none",
        fuzz=False,
        description="An unreadable form is a 400 page; a missing, forged or expired token or "
        "an unknown order is the 404 page, and nothing changes.",
    ),
    ("GET", "/orders/{order_id}"): Operation(
        "Order page after checkout",
        query=OrderPageQuery,
        media_type="text/html",
        auth="none",
        fuzz=False,
    ),
}
UNDOCUMENTED = Operation("(undocumented)", auth="none", fuzz=False)

_ERRORS: dict[int, str] = {
    400: "Malformed request, bad query parameter (validation_error), wrong SMS code (invalid_code)",
    401: "Not authenticated (unauthenticated, invalid_credentials)",
    402: "Not enough credits (insufficient_credits)",
    403: "Forbidden (forbidden)",
    404: "Not found, or not yours (not_found)",
    409: "Conflict (conflict, email_taken, phone_taken, failed_precondition, …)",
    413: "Body too large (payload_too_large)",
    415: "Not application/json (unsupported_media_type)",
    422: "Invalid field in the body (validation_error, content_rejected)",
    429: "Rate or daily limit (rate_limited, daily_limit_reached, code_locked)",
    500: "Internal error (internal); nothing was done",
    503: "A dependency is down (unavailable, sms_unavailable); nothing was done",
    504: "A dependency timed out (timeout); nothing was done",
}


def _path(route: web.AbstractRoute) -> str | None:
    resource = route.resource
    if resource is None or isinstance(resource, web.StaticResource):
        return None
    return re.sub(r"\{([^}:]+)(:[^}]*)?\}", r"{\1}", resource.canonical)


def registered_operations(app: web.Application) -> list[tuple[str, str]]:
    return sorted(_operations(app), key=lambda mp: (mp[1], mp[0]))


def _operations(app: web.Application) -> dict[tuple[str, str], Operation]:
    found: dict[tuple[str, str], Operation] = {}
    for route in app.router.routes():
        path = _path(route)
        if route.method in ("HEAD", "OPTIONS", "*") or path is None:
            continue
        op = operation_of(route.handler) or PAGES.get((route.method, path), UNDOCUMENTED)
        found[(route.method, path)] = op
    return found


def fuzzable_operations(app: web.Application) -> list[tuple[str, str]]:
    """The JSON operations a fuzzer should drive (no pages, streams, forms or webhooks)."""
    return sorted(mp for mp, op in _operations(app).items() if op.fuzz)


def _models(ops: dict[tuple[str, str], Operation]) -> list[tuple[type[BaseModel], JsonSchemaMode]]:
    pairs: dict[tuple[type[BaseModel], JsonSchemaMode], None] = {
        (ProblemBody, "serialization"): None
    }
    for op in ops.values():
        if op.body is not None:
            pairs[(op.body, "validation")] = None
        if op.response is not None:
            pairs[(op.response, "serialization")] = None
    return list(pairs)


def _query_parameters(op: Operation) -> list[dict[str, Any]]:
    if op.query is None:
        return []
    schema = op.query.model_json_schema(mode="validation")
    required = set(schema.get("required", ()))
    params = []
    for name, prop in schema.get("properties", {}).items():
        prop = dict(prop)
        description = prop.pop("description", None)
        prop.pop("title", None)
        if prop.get("default", 0) is None:
            del prop["default"]
        # An optional filter is absent, never null, on the wire.
        branches = prop.pop("anyOf", None)
        if branches is not None:
            kept = [b for b in branches if b.get("type") != "null"]
            prop.update(kept[0] if len(kept) == 1 else {"anyOf": kept})
        param: dict[str, Any] = {
            "name": name,
            "in": "query",
            "required": name in required,
            "schema": prop,
        }
        if description:
            param["description"] = description
        params.append(param)
    return params


_HEADER_SCHEMAS: dict[str, dict[str, Any]] = {
    IDEMPOTENCY_HEADER: {"type": "string", "minLength": 1, "maxLength": 255},
    "Last-Event-ID": {"type": "string", "pattern": "^[0-9]{1,18}$"},
    COOKIE_HEADER: {"type": "string", "enum": ["1"], "description": HEADER_DESCRIPTION},
}


def _parameters(path: str, op: Operation) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = []
    for name in re.findall(r"\{([^}]+)\}", path):
        schema: dict[str, Any] = {"type": "string"}
        if name.endswith("_id"):
            schema["pattern"] = _ID_PATTERN
        params.append({"name": name, "in": "path", "required": True, "schema": schema})
    params.extend(_query_parameters(op))
    for header in op.headers:
        params.append(
            {
                "name": header,
                "in": "header",
                "required": False,
                "schema": _HEADER_SCHEMAS.get(header, {"type": "string"}),
            }
        )
    return params


def _request_body(op: Operation, refs: dict[Any, Any]) -> dict[str, Any] | None:
    if op.body is not None:
        return {
            "required": True,
            "content": {op.request_media_type: {"schema": refs[(op.body, "validation")]}},
        }
    if op.request_media_type == "multipart/form-data":
        form = {
            "type": "object",
            "required": ["file"],
            "properties": {"file": {"type": "string", "contentMediaType": "image/*"}},
            "additionalProperties": {"type": "string"},
        }
        return {"required": True, "content": {"multipart/form-data": {"schema": form}}}
    if op.request_media_type != "application/json":
        return {"required": True, "content": {op.request_media_type: {"schema": {}}}}
    return None


def _problem_statuses(path: str, op: Operation) -> list[int]:
    statuses = {400, 429, 500, 503, 504, *op.errors}
    if op.auth != "none":
        statuses.add(401)
    if op.auth == "admin":
        statuses.add(403)
    if "{" in path:
        statuses.add(404)
    if op.body is not None:
        statuses.update({413, 415, 422})
    return sorted(statuses - {op.status, *op.also})


def _responses(path: str, op: Operation, refs: dict[Any, Any]) -> dict[str, Any]:
    ok: dict[str, Any] = {"description": "Success"}
    if op.status == 204:
        pass
    elif op.media_type == "text/event-stream":
        ok["description"] = (
            "A text/event-stream; each `status` event's data is a TaskEvent (components/schemas)"
        )
        ok["content"] = {op.media_type: {"schema": {"type": "string"}}}
    elif op.response is not None:
        ok["content"] = {op.media_type: {"schema": refs[(op.response, "serialization")]}}
    elif op.media_type == "application/json":
        ok["content"] = {op.media_type: {"schema": {"type": "object"}}}
    else:
        ok["content"] = {op.media_type: {"schema": {"type": "string"}}}
    responses: dict[str, Any] = {str(op.status): ok}
    for status in op.also:
        responses[str(status)] = {**ok, "description": "See the body"}
    problem = {PROBLEM: {"schema": {"$ref": REF.format(model="Problem")}}}
    for status in _problem_statuses(path, op):
        responses[str(status)] = {"description": _ERRORS.get(status, "Error"), "content": problem}
    return responses


def _security(op: Operation) -> list[dict[str, list[str]]]:
    if op.auth == "none":
        return []
    if op.auth == "optional":
        return [{}, {"bearer": []}]
    return [{"bearer": []}]


def openapi_document(app: web.Application, settings: GatewaySettings) -> dict[str, Any]:
    ops = _operations(app)
    refs, top = models_json_schema(_models(ops), ref_template=REF)
    schemas: dict[str, Any] = top.get("$defs", {})
    schemas["Problem"] = schemas.pop(ProblemBody.__name__)
    # Bounds that come from configuration, stated where the client can read them.
    upload = schemas.get("CreateUploadRequest", {}).get("properties", {}).get("size")
    if upload is not None:
        upload["maximum"] = settings.upload_max_bytes
    paths: dict[str, dict[str, Any]] = {}
    for method, path in sorted(ops, key=lambda mp: (mp[1], mp[0])):
        op = ops[(method, path)]
        spec: dict[str, Any] = {"summary": op.summary, "operationId": _operation_id(method, path)}
        if op.description:
            spec["description"] = op.description
        params = _parameters(path, op)
        if params:
            spec["parameters"] = params
        body = _request_body(op, refs)
        if body is not None:
            spec["requestBody"] = body
        spec["responses"] = _responses(path, op, refs)
        spec["security"] = _security(op)
        if not op.fuzz:
            spec["x-atelier-fuzz"] = False
        paths.setdefault(path, {})[method.lower()] = spec
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Atelier API",
            "version": "1.0.0",
            "description": "The public HTTP API of Atelier (HTTP_API.md). Errors are "
            "application/problem+json with a stable `code`; lists take page_size/page_token.",
        },
        "servers": [{"url": settings.gateway_public_url}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        },
    }


def _operation_id(method: str, path: str) -> str:
    words = re.sub(r"[{}]", "", path).strip("/").replace("/", "_").replace(".", "_")
    return f"{method.lower()}_{words or 'root'}"

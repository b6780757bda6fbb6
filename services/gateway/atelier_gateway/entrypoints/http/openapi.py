"""The OpenAPI 3.1 document of the public API, built from the registered routes plus the
descriptions below (a route without a description is a bug: a test checks for it)."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

_obj = {"type": "object"}
_str = {"type": "string"}
_int = {"type": "integer"}

SCHEMAS: dict[str, Any] = {
    "Problem": {
        "type": "object",
        "required": ["type", "title", "status", "detail", "code"],
        "properties": {
            "type": _str,
            "title": _str,
            "status": _int,
            "detail": _str,
            "code": _str,
            "field": _str,
        },
    },
    "SignUp": {
        "type": "object",
        "required": ["email", "password"],
        "properties": {"email": _str, "password": {"type": "string", "minLength": 8}, "name": _str},
    },
    "LogIn": {
        "type": "object",
        "required": ["email", "password"],
        "properties": {"email": _str, "password": _str},
    },
    "RefreshToken": {
        "type": "object",
        "required": ["refresh_token"],
        "properties": {"refresh_token": _str},
    },
    "Session": {
        "type": "object",
        "properties": {
            "user": {"$ref": "#/components/schemas/UserSummary"},
            "access_token": _str,
            "refresh_token": _str,
            "expires_in": _int,
        },
    },
    "UserSummary": {
        "type": "object",
        "properties": {
            "id": _str,
            "email": _str,
            "name": _str,
            "role": {"enum": ["user", "admin"]},
        },
    },
    "Profile": {
        "type": "object",
        "properties": {
            "id": _str,
            "email": _str,
            "phone": _str,
            "name": _str,
            "avatar_url": _str,
            "preferences": _obj,
            "role": _str,
            "created_at": {"type": "string", "format": "date-time"},
        },
    },
    "ProfileChanges": {
        "type": "object",
        "properties": {"name": _str, "avatar_url": _str, "preferences": _obj},
    },
    "Balance": {
        "type": "object",
        "properties": {
            "available": _int,
            "held": _int,
            "membership": _obj,
            "grants": {"type": "array", "items": _obj},
        },
    },
    "Catalog": {
        "type": "object",
        "properties": {
            "market": _str,
            "items": {"type": "array", "items": _obj},
            "channels": {"type": "array", "items": _str},
        },
    },
    "NewOrder": {
        "type": "object",
        "required": ["item_id", "channel"],
        "properties": {"item_id": _str, "channel": _str},
    },
    "Order": {
        "type": "object",
        "properties": {
            "id": _str,
            "number": _str,
            "status": _str,
            "item_id": _str,
            "amount": _int,
            "currency": _str,
            "channel": _str,
            "checkout": _obj,
        },
    },
    "NewTask": {
        "type": "object",
        "required": ["type"],
        "properties": {
            "type": {"enum": ["text_to_image", "basic_clean", "model_pose12"]},
            "params": _obj,
            "input_upload_id": _str,
        },
    },
    "Task": {
        "type": "object",
        "properties": {
            "id": _str,
            "type": _str,
            "status": _str,
            "cost": _int,
            "params": _obj,
            "error": _str,
            "images": {"type": "array", "items": _obj},
        },
    },
    "NewUpload": {
        "type": "object",
        "required": ["content_type", "size"],
        "properties": {"content_type": _str, "size": _int},
    },
    "Page": {
        "type": "object",
        "properties": {"items": {"type": "array", "items": _obj}, "next_page_token": _str},
    },
}

# (method, path) → (summary, request schema or None, success status, response schema or None,
#                  authenticated)
OPERATIONS: dict[tuple[str, str], tuple[str, str | None, int, str | None, bool]] = {
    ("POST", "/v1/auth/signup"): ("Sign up", "SignUp", 201, "Session", False),
    ("POST", "/v1/auth/login"): ("Log in", "LogIn", 200, "Session", False),
    ("POST", "/v1/auth/refresh"): (
        "Rotate the refresh token",
        "RefreshToken",
        200,
        "Session",
        False,
    ),
    ("POST", "/v1/auth/logout"): ("Log out (revoke the session)", "RefreshToken", 204, None, False),
    ("GET", "/v1/me"): ("Your profile", None, 200, "Profile", True),
    ("PATCH", "/v1/me"): ("Edit your profile", "ProfileChanges", 200, "Profile", True),
    ("GET", "/v1/me/balance"): (
        "Credit balance, grants and membership",
        None,
        200,
        "Balance",
        True,
    ),
    ("GET", "/v1/me/ledger"): ("Ledger entries, newest first", None, 200, "Page", True),
    ("GET", "/v1/me/stats"): ("Your generation statistics", None, 200, None, True),
    ("GET", "/v1/catalog"): (
        "Credit packs, membership plans and payment channels",
        None,
        200,
        "Catalog",
        False,
    ),
    ("POST", "/v1/orders"): (
        "Create an order (Idempotency-Key supported)",
        "NewOrder",
        201,
        "Order",
        True,
    ),
    ("GET", "/v1/orders"): ("Your orders", None, 200, "Page", True),
    ("GET", "/v1/orders/{order_id}"): ("One order", None, 200, "Order", True),
    ("POST", "/v1/orders/{order_id}/refresh"): (
        "Ask the provider about the payment",
        None,
        200,
        "Order",
        True,
    ),
    ("POST", "/v1/uploads"): ("Start a direct upload", "NewUpload", 201, None, True),
    ("POST", "/v1/tasks"): (
        "Create a generation task (Idempotency-Key supported)",
        "NewTask",
        201,
        "Task",
        True,
    ),
    ("GET", "/v1/tasks"): ("Your tasks, newest first", None, 200, "Page", True),
    ("GET", "/v1/tasks/{task_id}"): ("One task", None, 200, "Task", True),
    ("POST", "/v1/tasks/{task_id}/cancel"): (
        "Cancel a task (credits released)",
        None,
        200,
        "Task",
        True,
    ),
    ("GET", "/v1/tasks/{task_id}/events"): (
        "Live task status (server-sent events)",
        None,
        200,
        None,
        True,
    ),
    ("GET", "/v1/images"): ("Your images (gallery)", None, 200, "Page", True),
    ("GET", "/v1/admin/users"): ("Admin: search users", None, 200, "Page", True),
    ("GET", "/v1/admin/tasks"): ("Admin: list every user's tasks", None, 200, "Page", True),
    ("POST", "/webhooks/{provider}"): (
        "Provider notification (raw body, verified upstream)",
        None,
        200,
        None,
        False,
    ),
    ("GET", "/sandbox/checkout/{order_id}"): (
        "Sandbox checkout page (local market)",
        None,
        200,
        None,
        False,
    ),
    ("POST", "/sandbox/checkout/{order_id}"): (
        "Complete a sandbox checkout (form: outcome)",
        None,
        303,
        None,
        False,
    ),
    ("GET", "/orders/{order_id}"): ("Order page after checkout", None, 200, None, False),
    ("GET", "/files/{key}"): ("Download a stored file by signed URL", None, 200, None, False),
    ("POST", "/uploads"): (
        "Direct upload to local storage (multipart form)",
        None,
        201,
        None,
        False,
    ),
    ("GET", "/healthz"): ("Liveness", None, 200, None, False),
    ("GET", "/"): ("Landing page", None, 200, None, False),
    ("GET", "/readyz"): ("Readiness (database, billing, tasks)", None, 200, None, False),
    ("GET", "/metrics"): ("Prometheus metrics", None, 200, None, False),
    ("GET", "/v1/openapi.json"): ("This document", None, 200, None, False),
}

_ERRORS = {
    "400": "Malformed request (validation_error)",
    "401": "Not authenticated (unauthenticated)",
    "404": "Not found or not yours (not_found)",
    "409": "Conflict",
    "413": "Body too large (payload_too_large)",
    "422": "Invalid field (validation_error)",
    "429": "Rate or daily limit (rate_limited, daily_limit_reached)",
    "503": "A dependency is down (unavailable)",
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def registered_operations(app: web.Application) -> list[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for route in app.router.routes():
        if route.method in ("HEAD", "OPTIONS", "*") or route.resource is None:
            continue
        path = re.sub(r"\{([^}:]+)(:[^}]*)?\}", r"{\1}", route.resource.canonical)
        found.add((route.method, path))
    return sorted(found, key=lambda mp: (mp[1], mp[0]))


def openapi_document(app: web.Application, server_url: str) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for method, path in registered_operations(app):
        summary, req, status, resp, auth = OPERATIONS.get(
            (method, path), ("(undocumented)", None, 200, None, False)
        )
        op: dict[str, Any] = {"summary": summary, "operationId": _operation_id(method, path)}
        params = [
            {"name": name, "in": "path", "required": True, "schema": _str}
            for name in re.findall(r"\{([^}]+)\}", path)
        ]
        if path in ("/v1/orders", "/v1/tasks") and method == "POST":
            params.append(
                {"name": "Idempotency-Key", "in": "header", "required": False, "schema": _str}
            )
        if params:
            op["parameters"] = params
        if req:
            op["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": _ref(req)}},
            }
        ok: dict[str, Any] = {"description": "Success"}
        if resp:
            ok["content"] = {"application/json": {"schema": _ref(resp)}}
        responses: dict[str, Any] = {str(status): ok}
        problem = {"application/problem+json": {"schema": _ref("Problem")}}
        for code, text in _ERRORS.items():
            responses[code] = {"description": text, "content": problem}
        if "credits" in summary or path == "/v1/tasks":
            responses["402"] = {"description": "insufficient_credits", "content": problem}
        op["responses"] = responses
        if auth:
            op["security"] = [{"bearer": []}]
        paths.setdefault(path, {})[method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "Atelier API", "version": "1.0.0"},
        "servers": [{"url": server_url}],
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        },
    }


def _operation_id(method: str, path: str) -> str:
    words = re.sub(r"[{}]", "", path).strip("/").replace("/", "_").replace(".", "_")
    return f"{method.lower()}_{words}"

"""Reading JSON request bodies and validating fields, naming the field on every error."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from atelier_gateway.entrypoints.http.problems import Problem, validation_error

JSON_TYPES = ("application/json",)


def json_response(
    data: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        status=status,
        body=json.dumps(data, separators=(",", ":")).encode(),
        content_type="application/json",
        headers=headers,
    )


async def read_body(request: web.Request) -> bytes:
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge as e:
        raise Problem(413, "payload_too_large", "Request body too large", str(e.text)) from e


async def read_json_object(request: web.Request, *, allow_empty: bool = False) -> dict[str, Any]:
    raw = await read_body(request)
    return parse_json_object(request, raw, allow_empty=allow_empty)


def parse_json_object(
    request: web.Request, raw: bytes, *, allow_empty: bool = False
) -> dict[str, Any]:
    if not raw and allow_empty:
        return {}
    if request.content_type not in JSON_TYPES:
        raise Problem(
            415,
            "unsupported_media_type",
            "Unsupported media type",
            "the request body must be application/json",
        )
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise validation_error("body", f"malformed JSON: {e}", status=400) from e
    if not isinstance(data, dict):
        raise validation_error("body", "the request body must be a JSON object", status=400)
    return data


def req_str(data: dict[str, Any], name: str, *, max_len: int = 1000, min_len: int = 1) -> str:
    if name not in data or data[name] is None:
        raise validation_error(name, f"{name} is required")
    return _check_str(data[name], name, max_len, min_len)


def opt_str(data: dict[str, Any], name: str, *, max_len: int = 1000) -> str | None:
    value = data.get(name)
    if value is None:
        return None
    return _check_str(value, name, max_len, 0)


def _check_str(value: Any, name: str, max_len: int, min_len: int) -> str:
    if not isinstance(value, str):
        raise validation_error(name, f"{name} must be a string")
    if len(value) < min_len:
        raise validation_error(name, f"{name} must not be empty")
    if len(value) > max_len:
        raise validation_error(name, f"{name} must have at most {max_len} characters")
    return value


def opt_int(
    data: dict[str, Any], name: str, *, minimum: int | None = None, maximum: int | None = None
) -> int | None:
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise validation_error(name, f"{name} must be an integer")
    if minimum is not None and value < minimum:
        raise validation_error(name, f"{name} must be at least {minimum}")
    if maximum is not None and value > maximum:
        raise validation_error(name, f"{name} must be at most {maximum}")
    return value


def opt_object(data: dict[str, Any], name: str) -> dict[str, Any] | None:
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise validation_error(name, f"{name} must be an object")
    return value


def reject_unknown(data: dict[str, Any], allowed: set[str]) -> None:
    for key in data:
        if key not in allowed:
            raise validation_error(key, f"unknown field {key}")


def page_params(request: web.Request) -> tuple[int, str]:
    raw = request.query.get("page_size", "20")
    try:
        size = int(raw)
    except ValueError as e:
        raise validation_error("page_size", "page_size must be an integer", status=400) from e
    if size < 1 or size > 100:
        raise validation_error("page_size", "page_size must be between 1 and 100", status=400)
    token = request.query.get("page_token", "")
    if len(token) > 1000:
        raise validation_error("page_token", "page_token is too long", status=400)
    return size, token

"""Reading JSON request bodies and writing JSON responses.

Bodies are parsed by pydantic-core's JSON parser: nesting is bounded (a deeply nested body is a
400, never a ``RecursionError``), and ``NaN``/``Infinity`` are refused as JSON does.
"""

from __future__ import annotations

import json
from typing import Any

import pydantic_core
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


def parse_json(raw: bytes) -> Any:
    """Any JSON document; a malformed or too deeply nested one is a 400."""
    try:
        return pydantic_core.from_json(raw, allow_inf_nan=False)
    except ValueError as e:
        raise validation_error("body", f"malformed JSON: {e}", status=400) from None


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
    data = parse_json(raw)
    if not isinstance(data, dict):
        raise validation_error("body", "the request body must be a JSON object", status=400)
    return data

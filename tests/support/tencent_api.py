"""What every local Tencent Cloud API 3.0 endpoint shares (``tencent_sms_server.py``,
``tencent_moderation_server.py``): the TC3-HMAC-SHA256 check of a request as received, and the
answer envelope. Test infrastructure, not product code.

The protocol (https://cloud.tencent.com/document/api/213/30654): ``POST /`` with
``Content-Type: application/json``, ``X-TC-Action``, ``X-TC-Version``, ``X-TC-Timestamp``,
``X-TC-Region`` and ``Authorization: TC3-HMAC-SHA256 Credential=<SecretId>/<date>/<service>/
tc3_request, SignedHeaders=content-type;host, Signature=<hex>``. The signature is recomputed
here by the documented algorithm (written out below, independent of the SDK's code): the
canonical request ``METHOD\\nURI\\nQUERY\\ncanonical headers\\nsigned headers\\nhex(sha256(body))``,
the string to sign ``TC3-HMAC-SHA256\\n<timestamp>\\n<date>/<service>/tc3_request\\n
hex(sha256(canonical))``, and the key chain ``HMAC("TC3"+SecretKey, date) → HMAC(·, service) →
HMAC(·, "tc3_request")``. A wrong signature, an unknown SecretId, a timestamp more than 5 minutes
off or a scope that does not match is answered like Tencent Cloud: HTTP 200 with
``{"Response": {"Error": {"Code": "AuthFailure.…", "Message": …}, "RequestId": …}}``, and
``Content-Type: application/json`` exactly (the SDK reads ``Error`` only then).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
import uuid
from collections.abc import Collection
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

MAX_SKEW_SECONDS = 300

_AUTH = re.compile(
    r"^TC3-HMAC-SHA256 Credential=(?P<id>[^/]+)/(?P<date>\d{4}-\d{2}-\d{2})/(?P<service>[^/]+)"
    r"/tc3_request, SignedHeaders=(?P<headers>[a-z0-9;-]+), Signature=(?P<sig>[0-9a-f]{64})$"
)


class TencentApiError(Exception):
    """Answered as ``{"Response": {"Error": {"Code": code, "Message": message}, ...}}``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(code)
        self.code = code
        self.message = message


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def tc3_signature(
    secret_key: str,
    *,
    method: str,
    path: str,
    query: str,
    headers: dict[str, str],
    signed_headers: list[str],
    body: bytes,
    timestamp: int,
    date: str,
    service: str,
) -> str:
    """TC3-HMAC-SHA256 as Tencent Cloud documents it; ``headers`` are the request's headers
    with lower-case names."""
    canonical_headers = "".join(
        f"{name}:{headers.get(name, '').strip().lower()}\n" for name in signed_headers
    )
    canonical_request = "\n".join(
        [
            method,
            path,
            query,
            canonical_headers,
            ";".join(signed_headers),
            hashlib.sha256(body).hexdigest(),
        ]
    )
    scope = f"{date}/{service}/tc3_request"
    string_to_sign = "\n".join(
        [
            "TC3-HMAC-SHA256",
            str(timestamp),
            scope,
            hashlib.sha256(canonical_request.encode()).hexdigest(),
        ]
    )
    key = _hmac(_hmac(_hmac(("TC3" + secret_key).encode(), date), service), "tc3_request")
    return hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()


def check_tc3(
    request: web.Request,
    body: bytes,
    *,
    secret_id: str,
    secret_key: str,
    services: Collection[str],
) -> str:
    """Checks the request's TC3-HMAC-SHA256 signature; returns the service of its signed
    credential scope (one of ``services``) or raises :class:`TencentApiError` (AuthFailure.*)."""
    match = _AUTH.match(request.headers.get("Authorization", ""))
    if match is None:
        raise TencentApiError("AuthFailure.InvalidAuthorization", "Authorization is invalid")
    if match["id"] != secret_id:
        raise TencentApiError("AuthFailure.SecretIdNotFound", "the SecretId does not exist")
    try:
        timestamp = int(request.headers.get("X-TC-Timestamp", ""))
    except ValueError:
        raise TencentApiError(
            "AuthFailure.InvalidAuthorization", "X-TC-Timestamp is invalid"
        ) from None
    if abs(time.time() - timestamp) > MAX_SKEW_SECONDS:
        raise TencentApiError("AuthFailure.SignatureExpire", "the signature has expired")
    day = datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d")
    if match["date"] != day or match["service"] not in services:
        raise TencentApiError(
            "AuthFailure.InvalidAuthorization", "the credential scope does not match"
        )
    signed = match["headers"].split(";")
    if "content-type" not in signed or "host" not in signed:
        raise TencentApiError(
            "AuthFailure.InvalidAuthorization", "content-type and host must be signed"
        )
    expected = tc3_signature(
        secret_key,
        method=request.method,
        path=request.raw_path.split("?", 1)[0],
        query=request.query_string if request.method == "GET" else "",
        headers={k.lower(): v for k, v in request.headers.items()},
        signed_headers=signed,
        body=body,
        timestamp=timestamp,
        date=match["date"],
        service=match["service"],
    )
    if not hmac.compare_digest(expected, match["sig"]):
        raise TencentApiError(
            "AuthFailure.SignatureFailure", "the request signature does not match"
        )
    return match["service"]


def new_request_id() -> str:
    return str(uuid.uuid4())


def answer(payload: dict[str, Any], *, request_id: str | None = None) -> web.Response:
    """A Tencent Cloud API 3.0 answer: ``{"Response": {**payload, "RequestId": …}}``."""
    body = json.dumps({"Response": {**payload, "RequestId": request_id or new_request_id()}})
    return web.Response(body=body.encode(), headers={"Content-Type": "application/json"})


def error_answer(error: TencentApiError, *, request_id: str | None = None) -> web.Response:
    return answer({"Error": {"Code": error.code, "Message": error.message}}, request_id=request_id)

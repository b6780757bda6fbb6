"""``application/problem+json`` errors and the ONE table mapping errors to HTTP.

Domain errors of the gateway core and errors of billing/tasks (gRPC status + ErrorInfo reason)
both end here; anything else is a 500 with a generic message (the detail is logged).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from atelier_common.grpc_client import RemoteCallError
from pydantic import BaseModel, ConfigDict

from atelier_gateway.domain import errors as gw
from atelier_gateway.entrypoints.http.i18n import Language, localized_detail
from atelier_ports import problems
from atelier_ports.paging import InvalidPageToken

PROBLEM_TYPE_BASE = "https://atelier.dev/problems/"
CONTENT_TYPE = "application/problem+json"


@dataclass(frozen=True, slots=True)
class ProblemSpec:
    status: int
    code: str
    title: str


class Problem(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        title: str,
        detail: str = "",
        *,
        field: str | None = None,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {detail}")
        self.status = status
        self.code = code
        self.title = title
        self.detail = detail or title
        self.field = field
        self.extra = extra or {}
        self.headers = headers or {}


class FieldError(BaseModel):
    model_config = ConfigDict(extra="forbid")

    field: str
    message: str


class ProblemBody(BaseModel):
    """``application/problem+json`` (RFC 9457) plus a stable machine-readable ``code``; ``field``
    and ``errors`` name the offending input, ``reason`` is the owning service's ErrorInfo reason."""

    model_config = ConfigDict(extra="forbid")

    type: str
    title: str
    status: int
    detail: str
    code: str
    field: str | None = None
    errors: list[FieldError] | None = None
    reason: str | None = None


def validation_error(field: str, detail: str, status: int = 422) -> Problem:
    return Problem(status, "validation_error", "Invalid request", detail, field=field)


def problem_response(problem: Problem, language: Language = "en") -> web.Response:
    """The response for ``problem``; its ``detail`` (only) in ``language`` (see i18n.py)."""
    body = ProblemBody(
        type=PROBLEM_TYPE_BASE + problem.code,
        title=problem.title,
        status=problem.status,
        detail=localized_detail(problem.code, problem.field, problem.detail, language),
        code=problem.code,
        field=problem.field or None,
        errors=[FieldError(field=problem.field, message=problem.detail)] if problem.field else None,
        reason=problem.extra.get("reason"),
    )
    return web.Response(
        status=problem.status,
        body=json.dumps(body.model_dump(mode="json", exclude_none=True)).encode(),
        content_type=CONTENT_TYPE,
        headers=problem.headers,
    )


# Gateway core errors, first match wins (subclasses before bases).
DOMAIN_TABLE: tuple[tuple[type[problems.DomainError], ProblemSpec], ...] = (
    (gw.EmailTaken, ProblemSpec(409, "email_taken", "Email already registered")),
    (gw.IdempotencyKeyReused, ProblemSpec(409, "idempotency_key_reused", "Key reused")),
    (
        gw.IdempotencyKeyInFlight,
        ProblemSpec(409, "idempotency_key_in_flight", "Request in progress"),
    ),
    (gw.InvalidCredentials, ProblemSpec(401, "invalid_credentials", "Wrong email or password")),
    (gw.InvalidCode, ProblemSpec(400, "invalid_code", "Invalid code")),
    (gw.CodeLocked, ProblemSpec(429, "code_locked", "Code locked")),
    (gw.PhoneTaken, ProblemSpec(409, "phone_taken", "Phone number taken")),
    (gw.SmsNotDelivered, ProblemSpec(503, "sms_unavailable", "SMS could not be sent")),
    (problems.Unauthenticated, ProblemSpec(401, "unauthenticated", "Not authenticated")),
    (problems.NotFound, ProblemSpec(404, "not_found", "Not found")),
    (problems.AlreadyExists, ProblemSpec(409, "conflict", "Conflict")),
    (InvalidPageToken, ProblemSpec(400, "validation_error", "Invalid request")),
    (problems.InvalidArgument, ProblemSpec(422, "validation_error", "Invalid request")),
    (problems.FailedPrecondition, ProblemSpec(409, "failed_precondition", "Not possible now")),
    (problems.ResourceExhausted, ProblemSpec(429, "rate_limited", "Too many requests")),
    (problems.PermissionDenied, ProblemSpec(403, "forbidden", "Forbidden")),
    (problems.Unavailable, ProblemSpec(503, "unavailable", "Service unavailable")),
)

# Errors of billing and tasks: (gRPC status, ErrorInfo reason or "" for any) → HTTP.
# Bad query parameters are 400 and bad bodies 422 (the rule in contract.py): a page token the
# owning service refuses (INVALID_PAGE_TOKEN, atelier_ports.paging) is a bad query parameter.
REMOTE_TABLE: tuple[tuple[str, str, ProblemSpec], ...] = (
    (
        "INVALID_ARGUMENT",
        "INVALID_PAGE_TOKEN",
        ProblemSpec(400, "validation_error", "Invalid request"),
    ),
    (
        "FAILED_PRECONDITION",
        "INSUFFICIENT_CREDITS",
        ProblemSpec(402, "insufficient_credits", "Insufficient credits"),
    ),
    (
        "RESOURCE_EXHAUSTED",
        "DAILY_LIMIT_REACHED",
        ProblemSpec(429, "daily_limit_reached", "Daily limit reached"),
    ),
    (
        "INVALID_ARGUMENT",
        "CONTENT_REJECTED",
        ProblemSpec(422, "content_rejected", "Content rejected"),
    ),
    (
        "INVALID_ARGUMENT",
        "INVALID_SIGNATURE",
        ProblemSpec(400, "invalid_signature", "Invalid signature"),
    ),
    ("NOT_FOUND", "", ProblemSpec(404, "not_found", "Not found")),
    ("ALREADY_EXISTS", "", ProblemSpec(409, "conflict", "Conflict")),
    ("INVALID_ARGUMENT", "", ProblemSpec(422, "validation_error", "Invalid request")),
    ("OUT_OF_RANGE", "", ProblemSpec(422, "validation_error", "Invalid request")),
    ("FAILED_PRECONDITION", "", ProblemSpec(409, "failed_precondition", "Not possible now")),
    ("ABORTED", "", ProblemSpec(409, "conflict", "Conflict")),
    ("RESOURCE_EXHAUSTED", "", ProblemSpec(429, "rate_limited", "Too many requests")),
    ("PERMISSION_DENIED", "", ProblemSpec(403, "forbidden", "Forbidden")),
    ("UNAVAILABLE", "", ProblemSpec(503, "unavailable", "Service unavailable")),
    ("DEADLINE_EXCEEDED", "", ProblemSpec(504, "timeout", "Upstream timeout")),
)


def from_domain_error(exc: problems.DomainError) -> Problem:
    for cls, spec in DOMAIN_TABLE:
        if isinstance(exc, cls):
            if spec.status >= 500:
                return Problem(spec.status, spec.code, spec.title, spec.title)
            field = exc.metadata.get("field")
            retry_after = exc.metadata.get("retry_after")
            headers = {"Retry-After": retry_after} if retry_after else None
            return Problem(
                spec.status, spec.code, spec.title, exc.message, field=field, headers=headers
            )
    return Problem(500, "internal", "Internal error", "internal error")


# Field names of the services' gRPC messages → the names of the public API (HTTP_API.md).
API_FIELD_NAMES: dict[str, str] = {
    "input_keys": "input_upload_id",
    "init_image_key": "input_upload_id",
    "size_bytes": "size",
    "request_id": "Idempotency-Key",
}
_PROTO_NAME = re.compile(r"\b(" + "|".join(map(re.escape, API_FIELD_NAMES)) + r")\b")
_QUERY_FIELDS = frozenset({"page_token", "page_size"})


def api_text(text: str) -> str:
    """``text`` with the services' internal field names replaced by the API's."""
    return _PROTO_NAME.sub(lambda m: API_FIELD_NAMES[m.group(1)], text)


def from_remote_error(exc: RemoteCallError) -> Problem:
    for status, reason, spec in REMOTE_TABLE:
        if exc.status == status and (not reason or exc.reason == reason):
            if spec.status >= 500:
                # Never the service's own words: they may name internals.
                return Problem(spec.status, spec.code, spec.title, spec.title)
            field = None
            if spec.code == "validation_error":
                field = exc.metadata.get("field") or None
                if reason == "INVALID_PAGE_TOKEN":
                    field = "page_token"
                if field is not None:
                    field = API_FIELD_NAMES.get(field, field)
            problem_status = 400 if field in _QUERY_FIELDS else spec.status
            extra = {"reason": exc.reason} if exc.reason else {}
            return Problem(
                problem_status,
                spec.code,
                spec.title,
                api_text(exc.message) or spec.title,
                field=field,
                extra=extra,
            )
    return Problem(500, "internal", "Internal error", "internal error")

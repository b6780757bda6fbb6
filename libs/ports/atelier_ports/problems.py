"""The error taxonomy shared by all service cores.

A core raises intention-revealing subclasses (``InsufficientCredits(FailedPrecondition)``) with an
UPPER_SNAKE ``reason``; one table in each inbound adapter maps the categories below to gRPC status
codes (and the gateway maps those to HTTP). Nothing here knows about gRPC or HTTP.
"""

from __future__ import annotations

from collections.abc import Mapping


class DomainError(Exception):
    """Base of business errors. ``reason`` is stable and machine-readable."""

    reason: str = "DOMAIN_ERROR"

    def __init__(self, message: str, *, metadata: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.metadata: dict[str, str] = dict(metadata or {})


class NotFound(DomainError):
    reason = "NOT_FOUND"


class AlreadyExists(DomainError):
    """Also an idempotency key reused with different parameters."""

    reason = "ALREADY_EXISTS"


class InvalidArgument(DomainError):
    reason = "INVALID_ARGUMENT"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message, metadata={"field": field} if field else None)
        self.field = field


class FailedPrecondition(DomainError):
    reason = "FAILED_PRECONDITION"


class ResourceExhausted(DomainError):
    reason = "RESOURCE_EXHAUSTED"


class PermissionDenied(DomainError):
    reason = "PERMISSION_DENIED"


class Unauthenticated(DomainError):
    reason = "UNAUTHENTICATED"


class Unavailable(DomainError):
    reason = "UNAVAILABLE"

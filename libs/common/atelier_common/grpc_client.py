"""The client side of calls between services: ONE place that reads a failed call.

Every gRPC client (tasks → billing, gateway → billing and tasks) turns a non-OK status into a
:class:`RemoteCallError` here — the status name, the ``google.rpc.ErrorInfo`` reason and metadata
the server's interceptor attached — and asks this module what the status means:

- its :class:`ErrorCategory` (what kind of answer it is: a refusal the caller can act on, a fault
  on our side, or the remote service being out of reach);
- whether it is **transient**: only ``UNAVAILABLE`` and ``DEADLINE_EXCEEDED`` are, and a call is
  retried on them only if it is idempotent (:func:`call_unary`). Everything else is the remote
  service's answer: repeating the call would get the same answer, so it is never retried.

A ``DEADLINE_EXCEEDED`` or ``UNAVAILABLE`` on a call that changes something leaves its outcome
unknown; callers that must know (a credit hold) repeat it with the same idempotency key.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

import grpc
from google.rpc import error_details_pb2, status_pb2

from atelier_ports import problems

STATUS_DETAILS_KEY = "grpc-status-details-bin"
T = TypeVar("T")


class ErrorCategory(enum.StrEnum):
    NOT_FOUND = "not_found"
    CONFLICT = "conflict"  # ALREADY_EXISTS, ABORTED
    INVALID = "invalid"  # INVALID_ARGUMENT, OUT_OF_RANGE
    PRECONDITION = "precondition"  # FAILED_PRECONDITION (a business rule said no)
    EXHAUSTED = "exhausted"  # RESOURCE_EXHAUSTED (a rate or daily limit)
    DENIED = "denied"  # PERMISSION_DENIED
    UNAUTHENTICATED = "unauthenticated"  # between services: a misconfigured credential
    UNAVAILABLE = "unavailable"  # transient: the service was not reached or shed the call
    TIMEOUT = "timeout"  # transient: DEADLINE_EXCEEDED, the outcome is unknown
    CANCELLED = "cancelled"
    FAULT = "fault"  # INTERNAL, UNKNOWN, UNIMPLEMENTED, DATA_LOSS: a bug, never retried


CATEGORY_BY_STATUS: Mapping[str, ErrorCategory] = {
    "NOT_FOUND": ErrorCategory.NOT_FOUND,
    "ALREADY_EXISTS": ErrorCategory.CONFLICT,
    "ABORTED": ErrorCategory.CONFLICT,
    "INVALID_ARGUMENT": ErrorCategory.INVALID,
    "OUT_OF_RANGE": ErrorCategory.INVALID,
    "FAILED_PRECONDITION": ErrorCategory.PRECONDITION,
    "RESOURCE_EXHAUSTED": ErrorCategory.EXHAUSTED,
    "PERMISSION_DENIED": ErrorCategory.DENIED,
    "UNAUTHENTICATED": ErrorCategory.UNAUTHENTICATED,
    "UNAVAILABLE": ErrorCategory.UNAVAILABLE,
    "DEADLINE_EXCEEDED": ErrorCategory.TIMEOUT,
    "CANCELLED": ErrorCategory.CANCELLED,
}
TRANSIENT_STATUSES = frozenset({"UNAVAILABLE", "DEADLINE_EXCEEDED"})


def category_of(status: str) -> ErrorCategory:
    return CATEGORY_BY_STATUS.get(status, ErrorCategory.FAULT)


def is_transient(status: str) -> bool:
    return status in TRANSIENT_STATUSES


def is_retryable(status: str, *, idempotent: bool) -> bool:
    """Only a transient status, and only on a call that is safe to repeat."""
    return idempotent and is_transient(status)


class RemoteCallError(Exception):
    """A service answered with a non-OK status (or could not be reached)."""

    def __init__(
        self,
        service: str,
        status: str,
        message: str,
        reason: str = "",
        metadata: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{service}: {status} {reason} {message}")
        self.service = service
        self.status = status  # grpc.StatusCode name, e.g. "NOT_FOUND"
        self.message = message
        self.reason = reason  # google.rpc.ErrorInfo reason, "" if none
        self.metadata: dict[str, str] = metadata or {}

    @property
    def category(self) -> ErrorCategory:
        return category_of(self.status)

    @property
    def transient(self) -> bool:
        return is_transient(self.status)


def error_details(trailing: Iterable[Any] | None) -> tuple[str, dict[str, str]]:
    """The ErrorInfo (reason, metadata) in a call's trailing metadata, or ("", {})."""
    for key, value in trailing or ():
        if key != STATUS_DETAILS_KEY or not isinstance(value, bytes):
            continue
        try:
            status = status_pb2.Status.FromString(value)
        except Exception:  # a malformed detail is no reason to lose the status itself
            return "", {}
        for detail in status.details:
            info = error_details_pb2.ErrorInfo()
            if detail.Is(info.DESCRIPTOR) and detail.Unpack(info):
                return str(info.reason), dict(info.metadata)
    return "", {}


def translate(service: str, exc: grpc.RpcError) -> RemoteCallError:
    """A failed call (blocking or asyncio) as a :class:`RemoteCallError`."""
    code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
    details = exc.details() if hasattr(exc, "details") else ""
    trailing = exc.trailing_metadata() if hasattr(exc, "trailing_metadata") else ()
    reason, metadata = error_details(trailing)
    name = code.name if isinstance(code, grpc.StatusCode) else "UNKNOWN"
    return RemoteCallError(service, name, str(details or ""), reason, metadata)


_PROBLEM_BY_CATEGORY: Mapping[ErrorCategory, type[problems.DomainError]] = {
    ErrorCategory.NOT_FOUND: problems.NotFound,
    ErrorCategory.CONFLICT: problems.AlreadyExists,
    ErrorCategory.INVALID: problems.InvalidArgument,
    ErrorCategory.PRECONDITION: problems.FailedPrecondition,
    ErrorCategory.EXHAUSTED: problems.ResourceExhausted,
    ErrorCategory.DENIED: problems.PermissionDenied,
    ErrorCategory.UNAVAILABLE: problems.Unavailable,
    ErrorCategory.TIMEOUT: problems.Unavailable,
}


def to_problem(error: RemoteCallError) -> Exception:
    """The remote answer as the caller's own error taxonomy (reason and metadata kept).

    A refusal (not found, invalid, precondition, …) becomes the matching
    ``atelier_ports.problems`` error; being unable to reach the service becomes ``Unavailable``.
    Statuses that mean our side is wrong (UNAUTHENTICATED between services: a misconfigured
    credential; INTERNAL and friends: a bug) stay a ``RemoteCallError``, which callers report
    as an internal error — never as "try again later".
    """
    kind = _PROBLEM_BY_CATEGORY.get(error.category)
    if kind is None:
        return error
    message = error.message or f"{error.service} answered {error.status}"
    problem: problems.DomainError
    if kind is problems.InvalidArgument:
        problem = problems.InvalidArgument(message, field=error.metadata.get("field"))
    else:
        problem = kind(message)
    problem.metadata = dict(error.metadata)
    if error.reason:
        problem.reason = error.reason
    return problem


def raise_as_problem(error: RemoteCallError) -> NoReturn:
    """``raise to_problem(error)``, chained to the remote error when it was translated."""
    problem = to_problem(error)
    if problem is error:
        raise error
    raise problem from error


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 3  # in all, the first one included
    backoff: float = 0.2  # seconds before the 2nd attempt; doubled each time
    max_backoff: float = 2.0


def call_unary(
    method: Callable[..., T],
    request: Any,
    *,
    service: str,
    metadata: Iterable[tuple[str, str]],
    timeout: float,
    idempotent: bool,
    policy: RetryPolicy | None = None,
    budget: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call a blocking unary method; raise :class:`RemoteCallError` on a non-OK status.

    Transient statuses are retried (``policy``) only when ``idempotent``. ``budget`` bounds the
    whole thing, retries and back-off included (each attempt's deadline is cut to what is
    left), so a caller that must answer its own caller in time can say how long it has.
    """
    policy = policy or RetryPolicy()
    md = tuple(metadata)
    give_up = None if budget is None else time.monotonic() + budget
    attempt = 0
    while True:
        attempt += 1
        per_call = timeout
        if give_up is not None:
            per_call = min(per_call, give_up - time.monotonic())
            if per_call <= 0:
                raise RemoteCallError(service, "DEADLINE_EXCEEDED", "no time left for the call")
        try:
            return method(request, metadata=md, timeout=per_call)
        except grpc.RpcError as exc:
            error = translate(service, exc)
            error.__cause__ = exc
        if attempt >= policy.attempts or not is_retryable(error.status, idempotent=idempotent):
            raise error
        pause = min(policy.backoff * (2 ** (attempt - 1)), policy.max_backoff)
        if give_up is not None and time.monotonic() + pause >= give_up:
            raise error
        sleep(pause)

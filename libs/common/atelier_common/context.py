"""Per-call context (end user, role, request id) carried in contextvars."""

from __future__ import annotations

import contextvars
from dataclasses import dataclass

from atelier_ports import problems

# gRPC metadata keys used between services.
INTERNAL_TOKEN_KEY = "x-atelier-internal-token"
USER_ID_KEY = "x-atelier-user-id"
USER_ROLE_KEY = "x-atelier-user-role"
REQUEST_ID_KEY = "x-request-id"


@dataclass(frozen=True, slots=True)
class CallContext:
    user_id: str | None
    role: str
    request_id: str | None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


_NOBODY = CallContext(user_id=None, role="user", request_id=None)
_current: contextvars.ContextVar[CallContext | None] = contextvars.ContextVar(
    "atelier_call_context", default=None
)


def current_call() -> CallContext:
    return _current.get() or _NOBODY


def set_current_call(ctx: CallContext) -> contextvars.Token[CallContext | None]:
    return _current.set(ctx)


def reset_current_call(token: contextvars.Token[CallContext | None]) -> None:
    _current.reset(token)


def outgoing_metadata(
    internal_token: str,
    user_id: str | None = None,
    role: str = "user",
    request_id: str | None = None,
) -> tuple[tuple[str, str], ...]:
    """Metadata a client attaches to a call to another service."""
    md: list[tuple[str, str]] = [(INTERNAL_TOKEN_KEY, internal_token), (USER_ROLE_KEY, role)]
    if user_id:
        md.append((USER_ID_KEY, user_id))
    rid = request_id or current_call().request_id
    if rid:
        md.append((REQUEST_ID_KEY, rid))
    return tuple(md)


def require_user() -> str:
    """The end user the current call is made for; a user-scoped call without one is refused."""
    user_id = current_call().user_id
    if not user_id:
        raise problems.Unauthenticated("an end user is required")
    return user_id

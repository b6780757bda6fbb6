"""Checks of callers' input shared by the use cases, their limits, and the page of a listing."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from atelier_billing.application.config import BillingConfig
from atelier_ports import problems

T = TypeVar("T")

MAX_REQUEST_ID = 128
MAX_REASON = 500
MAX_EMAIL = 320
MAX_NAME = 200
# The most credits one hold or adjustment may move: far above any real use, far below the
# int64 columns, so no sum of them can overflow into a database error.
MAX_CREDITS = 1_000_000_000


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: Sequence[T]
    next_token: str


def shown(value: str, limit: int = 64) -> str:
    """A caller's value as quoted in an error message: never more than ``limit`` characters."""
    return repr(value if len(value) <= limit else value[:limit] + "…")


def require_key(value: str, name: str) -> str:
    value = value.strip()
    if not value or len(value) > MAX_REQUEST_ID:
        raise problems.InvalidArgument(f"{name} must be 1-{MAX_REQUEST_ID} characters", field=name)
    return value


def contact(email: str | None, name: str | None) -> tuple[str | None, str | None]:
    email, name = (email or "").strip() or None, (name or "").strip() or None
    if email is not None and (len(email) > MAX_EMAIL or "@" not in email):
        raise problems.InvalidArgument("email is not a valid address", field="email")
    if name is not None and len(name) > MAX_NAME:
        raise problems.InvalidArgument(f"name is longer than {MAX_NAME} characters", field="name")
    return email, name


def positive(amount: int, name: str = "amount") -> int:
    if not 0 < amount <= MAX_CREDITS:
        raise problems.InvalidArgument(f"{name} must be between 1 and {MAX_CREDITS}", field=name)
    return amount


def page_size(requested: int, config: BillingConfig) -> int:
    if requested < 0:
        raise problems.InvalidArgument("page_size must be >= 0", field="page_size")
    return min(requested or config.default_page_size, config.max_page_size)

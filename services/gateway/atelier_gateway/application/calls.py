"""What every call to billing or tasks carries: who it is made for, which page, and the raw
provider notifications the gateway forwards. Plain frozen dataclasses (no protobuf)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Caller:
    """Who a call is made for (forwarded to the owning service as metadata)."""

    user_id: str | None
    role: str = "user"
    request_id: str | None = None


@dataclass(frozen=True, slots=True)
class PageRequest:
    page_size: int
    page_token: str = ""


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: Sequence[T]
    next_page_token: str
    # Where the listing offers them: item_page_tokens[i] continues right after items[i].
    item_page_tokens: Sequence[str] = ()


@dataclass(frozen=True, slots=True)
class Notification:
    """A provider's webhook as it arrived: the service that owns it verifies the signature."""

    provider: str
    headers: Sequence[tuple[str, str]]
    body: bytes


@dataclass(frozen=True, slots=True)
class NotificationReceipt:
    applied: bool
    event_id: str | None = None

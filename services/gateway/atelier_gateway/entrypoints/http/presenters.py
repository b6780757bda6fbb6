"""Small conversions shared by the route modules: timestamps and protobuf enum names."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


def rfc3339(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def ts(message: Any, name: str) -> str | None:
    """A google.protobuf.Timestamp field as RFC 3339, or None when unset."""
    if not message.HasField(name):
        return None
    value: datetime = getattr(message, name).ToDatetime(tzinfo=UTC)
    return rfc3339(value)


def enum_name(value: int, enum_type: Any, prefix: str) -> str:
    name = str(enum_type.Name(value))
    return name[len(prefix) :].lower() if name.startswith(prefix) else name.lower()

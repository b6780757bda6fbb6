"""Datetimes at the outer edges, one way: always timezone-aware UTC.

- :func:`as_utc` for values read back from a database driver (SQLite hands back naive datetimes;
  everything Atelier stores is UTC). Tables can use :class:`atelier_common.sqltypes.UtcDateTime`
  instead, which does this for every column.
- :func:`to_timestamp` / :func:`from_timestamp` for servicers and gRPC clients: a datetime as a
  ``google.protobuf.Timestamp`` (unset stays unset) and back, a value out of range being the
  caller's mistake (INVALID_ARGUMENT naming the field), never a 500.
"""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp

from atelier_ports import problems


def as_utc(value: datetime) -> datetime:
    """Aware UTC: a naive value is taken as UTC, an aware one converted."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def as_utc_or_none(value: datetime | None) -> datetime | None:
    return None if value is None else as_utc(value)


def to_timestamp(value: datetime | None) -> Timestamp | None:
    """A message field's value: ``None`` leaves the field unset."""
    if value is None:
        return None
    stamp = Timestamp()
    stamp.FromDatetime(as_utc(value))
    return stamp


def from_timestamp(value: Timestamp, field: str) -> datetime:
    """An aware UTC datetime; a value no datetime can hold is InvalidArgument on ``field``."""
    try:
        return value.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError):
        raise problems.InvalidArgument(f"{field} is out of range", field=field) from None

"""What applying a payment notification did."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class NotificationOutcome:
    applied: bool
    event_id: str
    order_id: str | None

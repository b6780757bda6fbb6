"""What the API answers: the response models of each area and the presenters that make them
from the application's DTOs (``accounts``, ``billing``, ``tasks``). Route modules declare their
request models next to the handler and hand every result to a presenter here.

May import ``contract`` (the model bases) and the application's DTOs; never generated code.
"""

from __future__ import annotations

from datetime import UTC, datetime


def rfc3339(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")

"""What the tasks service remembers of each content moderation decision, and where: the
``ModerationDecisions`` repository (a part of the tasks unit of work)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from atelier_tasks.application.ports.moderation import (
    ModerationLabel,
    ModerationSubject,
    Verdict,
)

# The "provider" of a decision an admin made by overturning another (carried to the re-run).
ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class ModerationRecord:
    """One decision: what was checked (``subject``; the content's sha256 and, for an input
    photo, its storage key), for whom, the verdict and the provider's labels and request id.
    ``task_id`` is None for a refused prompt (its task was never created). An overturn sets
    ``overturned_at``/``overturned_by`` and, when it re-ran the task, ``rerun_task_id``."""

    id: str
    user_id: str
    task_id: str | None
    subject: ModerationSubject
    verdict: Verdict
    labels: tuple[ModerationLabel, ...]
    provider: str
    request_id: str | None
    content_sha256: str
    created_at: datetime
    content_key: str | None = None
    overturned_at: datetime | None = None
    overturned_by: str | None = None
    rerun_task_id: str | None = None

    @property
    def rejected(self) -> bool:
        return self.verdict is Verdict.REJECTED


@dataclass(frozen=True, slots=True)
class DecisionFilter:
    verdict: Verdict | None = None
    user_id: str | None = None
    task_id: str | None = None


class ModerationDecisions(Protocol):
    def add(self, records: Sequence[ModerationRecord]) -> None: ...

    def get(self, decision_id: str) -> ModerationRecord | None: ...

    def of_task(self, task_id: str) -> list[ModerationRecord]:
        """Every decision about one task, oldest first."""
        ...

    def allowed_content(self, task_id: str, subject: ModerationSubject) -> set[str]:
        """The sha256 of every content already allowed for this task and subject (checked
        before, or vouched for by an admin's overturn): not asked again."""
        ...

    def list(
        self, where: DecisionFilter, size: int, after: tuple[datetime, str] | None
    ) -> list[ModerationRecord]:
        """Newest first, keyset (created_at, id)."""
        ...

    def overturn(self, decision_id: str, at: datetime, by: str, rerun_task_id: str | None) -> bool:
        """Mark a decision overturned, once (False if it already was)."""
        ...

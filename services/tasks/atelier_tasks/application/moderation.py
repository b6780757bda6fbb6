"""Content moderation in the saga: ask the ``Moderation`` port, record every decision.

Where it runs (see docs/ARCHITECTURE.md, "Content moderation"):

- the user's words (prompt, negative prompt) in CreateTask, before anything is stored or held;
- the input photos in the dispatch step, before the task reaches its provider;
- every result image before it is stored as a result.

A provider that cannot answer raises ``ProviderUnavailable`` here, and the caller waits (CreateTask
answers UNAVAILABLE with nothing done; the worker tries again later): never fails open. Content
already allowed for a task (checked in an earlier attempt, or vouched for by an admin who
overturned a refusal, for the re-run) is not asked again: decisions are looked up by the
content's sha256. Checking again after a crash is harmless.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from atelier_ports.clock import Clock
from atelier_ports.ids import IdGenerator
from atelier_tasks.application.ports import ImageTools, TasksUnitOfWorkFactory
from atelier_tasks.application.ports.decisions import ModerationRecord
from atelier_tasks.application.ports.moderation import (
    ImageToModerate,
    Moderation,
    ModerationDecision,
    ModerationSubject,
)
from atelier_tasks.application.ports.storage import ObjectStorage
from atelier_tasks.domain.model import Task

log = logging.getLogger("atelier.tasks.moderation")

# How long a provider that reads images by URL (Tencent IMS) may take to fetch an input.
INPUT_URL_TTL_SECONDS = 600


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True, slots=True)
class ImageCheck:
    """One image to check: its bytes and, for a stored input, its key (the provider may read it
    by a signed URL)."""

    data: bytes
    key: str | None = None


class ContentChecks:
    """The saga's moderation steps; ``moderation=None`` (MODERATION_ENABLED=false) checks
    nothing and records nothing."""

    def __init__(
        self,
        *,
        moderation: Moderation | None,
        uow: TasksUnitOfWorkFactory,
        ids: IdGenerator,
        clock: Clock,
        images: ImageTools,
        storage: ObjectStorage,
    ) -> None:
        self.moderation = moderation
        self.uow = uow
        self.ids = ids
        self.clock = clock
        self.images = images
        self.storage = storage

    @property
    def enabled(self) -> bool:
        return self.moderation is not None

    def check_text(self, user_id: str, task_id: str | None, text: str) -> ModerationRecord:
        """Ask about the user's words; the record is NOT stored (CreateTask stores it with the
        task, or alone when refused). Raises ProviderUnavailable / ProviderRejected."""
        assert self.moderation is not None
        decision = self.moderation.check_text(text)
        return self._record(
            decision, user_id, task_id, ModerationSubject.PROMPT, sha256_of(text.encode())
        )

    def record(self, records: Sequence[ModerationRecord]) -> None:
        if records:
            with self.uow() as uow:
                uow.moderation.add(records)
                uow.commit()

    def check_images(
        self, task: Task, subject: ModerationSubject, images: Sequence[ImageCheck]
    ) -> ModerationRecord | None:
        """Check each image not yet allowed for this task, stopping at the first refusal, and
        record the decisions made (one transaction). Returns the refusal, or None when every
        image may be used. Raises ProviderUnavailable / ProviderRejected (the decisions made
        before are recorded first)."""
        assert self.moderation is not None
        with self.uow(read_only=True) as uow:
            allowed = uow.moderation.allowed_content(task.id, subject)
        made: list[ModerationRecord] = []
        try:
            for image in images:
                digest = sha256_of(image.data)
                if digest in allowed:
                    continue
                decision = self.moderation.check_image(self._to_moderate(image))
                record = self._record(decision, task.user_id, task.id, subject, digest, image.key)
                made.append(record)
                if record.rejected:
                    log.info(
                        "content refused",
                        extra={
                            "fields": {
                                "task_id": task.id,
                                "subject": subject.value,
                                "provider": record.provider,
                                "labels": [label.name for label in record.labels],
                            }
                        },
                    )
                    return record
                allowed.add(digest)
            return None
        finally:
            self.record(made)

    def _to_moderate(self, image: ImageCheck) -> ImageToModerate:
        try:
            content_type = self.images.inspect(image.data).content_type
        except ValueError:  # not an image we can read: the provider says what it is
            content_type = "application/octet-stream"
        url = self.storage.signed_url(image.key, INPUT_URL_TTL_SECONDS) if image.key else None
        return ImageToModerate(image.data, content_type, key=image.key, url=url)

    def _record(
        self,
        decision: ModerationDecision,
        user_id: str,
        task_id: str | None,
        subject: ModerationSubject,
        digest: str,
        key: str | None = None,
    ) -> ModerationRecord:
        return ModerationRecord(
            id=self.ids.new_id("mod"),
            user_id=user_id,
            task_id=task_id,
            subject=subject,
            verdict=decision.verdict,
            labels=tuple(decision.labels),
            provider=decision.provider,
            request_id=decision.request_id,
            content_sha256=digest,
            content_key=key,
            created_at=self.clock.now(),
        )

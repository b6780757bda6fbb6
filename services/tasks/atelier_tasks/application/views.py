"""What the use cases answer with: tasks and images with short-lived URLs, and keyset pages."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from atelier_ports.clock import Clock
from atelier_ports.paging import InvalidPageToken, decode_page_token, encode_page_token
from atelier_tasks.application.config import TasksConfig
from atelier_tasks.application.ports import Page, TasksUnitOfWork
from atelier_tasks.application.ports.storage import ObjectStorage
from atelier_tasks.domain.errors import InvalidParams
from atelier_tasks.domain.model import ResultImage, Task, TaskStatus

# Page-token kinds: a token only continues the listing that issued it.
TASKS_PAGE = "tasks.v1.tasks"
ALL_TASKS_PAGE = "tasks.v1.all_tasks"
IMAGES_PAGE = "tasks.v1.images"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class ImageView:
    image: ResultImage
    url: str
    thumbnail_url: str


@dataclass(frozen=True, slots=True)
class TaskView:
    task: Task
    images: list[ImageView] = field(default_factory=list)
    # With images: their signed URLs work until then (signing time + the URL lifetime).
    urls_expire_at: datetime | None = None


def encode_cursor(kind: str, created_at: datetime, item_id: str) -> str:
    """An opaque token for the keyset position (created_at, id), in microseconds since 1970."""
    micros = (created_at.astimezone(UTC) - _EPOCH) // timedelta(microseconds=1)
    return encode_page_token(kind, micros, item_id)


def decode_cursor(token: str, kind: str) -> tuple[datetime, str]:
    micros, item_id = decode_page_token(token, kind, (int, str))
    assert isinstance(micros, int) and isinstance(item_id, str)
    try:
        return _EPOCH + timedelta(microseconds=micros), item_id
    except OverflowError:  # a well-formed token with a position outside the calendar
        raise InvalidPageToken() from None


class TaskViews:
    """Builds views (signing image URLs) and reads page requests."""

    def __init__(self, *, storage: ObjectStorage, config: TasksConfig, clock: Clock) -> None:
        self.storage = storage
        self.config = config
        self.clock = clock

    def task(self, uow: TasksUnitOfWork, task: Task) -> TaskView:
        """The task with its images (read in the caller's unit of work)."""
        return self.tasks(uow, [task])[0]

    def tasks(self, uow: TasksUnitOfWork, tasks: Sequence[Task]) -> list[TaskView]:
        """The tasks with their images, read in a second query (a read-only unit need not be
        one snapshot): only succeeded tasks have images — they are stored in the transaction
        that makes the task succeeded — so a task read before it succeeded shows none, as it
        would have in one snapshot."""
        succeeded = [t.id for t in tasks if t.status is TaskStatus.SUCCEEDED]
        images: Mapping[str, list[ResultImage]] = uow.tasks.images_of(succeeded)
        return [self.view(t, images.get(t.id, ())) for t in tasks]

    def view(self, task: Task, images: Sequence[ResultImage]) -> TaskView:
        if not images:
            return TaskView(task)
        # Read before signing: the URLs expire no earlier than this.
        expires = self.clock.now() + timedelta(seconds=self.config.url_ttl_seconds)
        return TaskView(task, [self.image(i) for i in images], expires)

    def image(self, image: ResultImage) -> ImageView:
        ttl = self.config.url_ttl_seconds
        return ImageView(
            image,
            self.storage.signed_url(image.key, ttl),
            self.storage.signed_url(image.thumbnail_key, ttl),
        )

    def page(self, size: int, token: str, kind: str) -> Page:
        return requested_page(self.config, size, token, kind)


def requested_page(config: TasksConfig, size: int, token: str, kind: str) -> Page:
    """A caller's page request: the size (0 = the default, capped) and where ``token`` left off."""
    if size < 0:
        raise InvalidParams("page_size must not be negative", field="page_size")
    size = min(size or config.default_page_size, config.max_page_size)
    return Page(size, decode_cursor(token, kind) if token else None)

"""Ports of the tasks application (only tasks uses them; the shared clock, ids and error
taxonomy stay in ``atelier_ports``). Generation providers and object storage are in the
``generation`` and ``storage`` submodules."""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from atelier_ports.problems import Unavailable
from atelier_ports.unit_of_work import UnitOfWork
from atelier_tasks.application.ports.decisions import ModerationDecisions
from atelier_tasks.domain.model import ResultImage, Task, TaskEvent, TaskStatus, TaskType


class ConcurrentUpdate(Exception):
    """Someone else changed the task since it was read (optimistic concurrency)."""


class ClaimKind(enum.StrEnum):
    DISPATCH = "dispatch"  # paid-for tasks not yet (or no longer) at a provider
    POLL = "poll"  # processing at a polling/webhook provider, due for a poll


@dataclass(frozen=True, slots=True)
class Page:
    size: int
    # Keyset cursor: (created_at, id) of the last item of the previous page.
    after: tuple[datetime, str] | None = None


@dataclass(frozen=True, slots=True)
class TaskSummary:
    created_at: datetime
    type: TaskType
    status: TaskStatus
    cost: int
    images: int


@dataclass(frozen=True, slots=True)
class DailyQuota:
    """At most ``limit`` tasks per user and UTC day of their ``created_at``; tasks deleted
    (billing refused) or abandoned (the caller was told nothing was done) do not count."""

    limit: int


class TaskRepository(Protocol):
    """The tasks data, inside the transaction of a :class:`TasksUnitOfWork`."""

    def add(self, task: Task, quota: DailyQuota | None = None) -> Task:
        """Insert a new task and its first event. If the user already has a task with this
        request_id, insert nothing and return that one. With a ``quota``, count the task
        against the user's day in the same transaction (atomically: concurrent creates never
        exceed it) and raise DailyLimitReached instead when ``quota.limit`` is reached; the
        caller must then not commit. Deleting or abandoning the task gives the count back."""
        ...

    def save(self, task: Task, images: Sequence[ResultImage] = ()) -> None:
        """Write the task's changes, its new events and new images atomically, if the stored
        version is still ``task.version`` (then bump it); else raise ConcurrentUpdate. Only
        what changed since the task was read is written. Abandoning the task gives its daily
        count back in the same transaction."""
        ...

    def delete(self, task_id: str) -> None:
        """Remove a task that was never created (billing refused it) and give its daily count
        back (unless it was abandoned, which gave it back already)."""
        ...

    def get(self, task_id: str, user_id: str | None = None) -> Task | None:
        """``user_id`` scopes the lookup (None only for the worker)."""
        ...

    def get_with_images(self, task_id: str, user_id: str) -> tuple[Task, list[ResultImage]] | None:
        """The user's task and its images (by index), read together (one query)."""
        ...

    def find_by_request(self, user_id: str, request_id: str) -> Task | None: ...

    def find_by_provider_job(self, provider: str, job_id: str) -> Task | None: ...

    def list_tasks(
        self,
        user_id: str | None,
        page: Page,
        task_type: TaskType | None,
        status: TaskStatus | None,
    ) -> list[Task]:
        """Newest first; ``user_id`` None lists every user's tasks (admin only, checked above)."""
        ...

    def images_of(self, task_ids: Sequence[str]) -> dict[str, list[ResultImage]]: ...

    def list_images(
        self, user_id: str, page: Page, task_type: TaskType | None
    ) -> list[ResultImage]: ...

    def events_after(self, task_id: str, sequence: int) -> list[TaskEvent]: ...

    def summaries(self, user_id: str) -> list[TaskSummary]: ...

    def claim(
        self,
        kind: ClaimKind,
        now: datetime,
        owner: str,
        lease_until: datetime,
        limit: int,
        start: Callable[[Task], None] | None = None,
    ) -> list[Task]:
        """Lease up to ``limit`` due tasks to ``owner`` (``FOR UPDATE SKIP LOCKED`` where the
        database has it), oldest first; a leased task is invisible to other claimers until
        the lease ends. ``start`` is applied to each leased task inside the claiming
        transaction (e.g. the move to ``processing``); its changes and events are written
        together with the lease."""
        ...

    def timed_out(self, now: datetime, limit: int) -> list[str]: ...

    def unsettled(self, now: datetime, limit: int) -> list[str]:
        """Terminal tasks whose hold is held, or still placing and due (``next_attempt_at``)."""
        ...

    def holds_in_doubt(self, created_before: datetime, limit: int) -> list[str]:
        """Unfinished tasks still placing their hold, created before ``created_before``."""
        ...


class TasksUnitOfWork(UnitOfWork, Protocol):
    """One transaction over the tasks data: begun on ``__enter__``, ended by ``commit()`` /
    ``rollback()`` / ``__exit__`` (which rolls back unless committed). Never nested."""

    tasks: TaskRepository
    moderation: ModerationDecisions


class TasksUnitOfWorkFactory(Protocol):
    def __call__(self, *, read_only: bool = False, one_statement: bool = False) -> TasksUnitOfWork:
        """A unit for one use case call. ``read_only`` units only read: they need no
        transaction of their own (each statement sees committed data) and are never
        committed or rolled back — for reads that are one query each. ``one_statement`` units
        make one change that the repository writes in one statement (a save without new
        events or images): atomic by itself, so it needs no transaction around it either."""
        ...


class BillingClient(Protocol):
    """Credit holds in the billing service; every call is idempotent by ``request_id``."""

    def hold(
        self,
        user_id: str,
        request_id: str,
        amount: int,
        reference: str,
        budget: float | None = None,
    ) -> None:
        """Place the hold, giving up after ``budget`` seconds (retries included).

        Raises InsufficientCredits or BillingRefused (billing said no: nothing is held) or
        BillingUnavailable (no answer in time: the hold may or may not exist).
        """
        ...

    def capture(self, user_id: str, request_id: str) -> None:
        """Raises BillingUnavailable (try again later)."""
        ...

    def release(self, user_id: str, request_id: str) -> bool:
        """True once billing has released the hold (now or before); False if it has no hold
        under ``request_id``. Raises BillingUnavailable (try again later)."""
        ...


class Subscription(Protocol):
    def wait(self, timeout: float) -> bool:
        """Block until something was published for the task (True) or the timeout (False)."""
        ...

    async def wait_async(self, timeout: float) -> bool:
        """``wait`` on the running event loop, holding no thread."""
        ...

    def close(self) -> None: ...


class ChangesMissed(Unavailable):
    """A change feed may have missed changes (lost notifications, a follower too slow)."""

    reason = "CHANGES_MISSED"


class ChangeFeed(Protocol):
    async def changed(self, timeout: float) -> list[str]:
        """The ids of the tasks changed since the last call (waits up to ``timeout`` for one;
        [] if none). Raises ChangesMissed once changes may have been missed."""
        ...

    def close(self) -> None: ...


class TaskEventHub(Protocol):
    """Wakes watchers when a task has new events (the events themselves are read from the
    repository, so a lost or repeated wake-up changes nothing)."""

    def publish(self, task_id: str) -> None: ...

    def publish_all(self) -> None:
        """Wake every watcher (after wake-ups may have been missed); change feeds break."""
        ...

    def subscribe(self, task_id: str) -> Subscription: ...

    def follow_changes(self, backlog: int) -> ChangeFeed:
        """Every task's changes from now on (call it on the event loop that will wait)."""
        ...


@dataclass(frozen=True, slots=True)
class ImageInfo:
    content_type: str
    width: int
    height: int


class ImageTools(Protocol):
    def inspect(self, data: bytes) -> ImageInfo:
        """Raises ValueError for data that is not an image."""
        ...

    def thumbnail(self, data: bytes, max_side: int) -> tuple[bytes, str]:
        """Returns (bytes, content type)."""
        ...


class TaskMetrics(Protocol):
    """Counters and timings for operations (Prometheus in production)."""

    def task_finished(self, task_type: str, status: str, reason: str | None) -> None: ...

    def provider_call(self, provider: str, call: str, outcome: str, seconds: float) -> None:
        """``call``: submit | poll; ``outcome``: running | succeeded | failed | unavailable |
        rejected."""
        ...


class NoMetrics:
    def task_finished(self, task_type: str, status: str, reason: str | None) -> None:
        return None

    def provider_call(self, provider: str, call: str, outcome: str, seconds: float) -> None:
        return None

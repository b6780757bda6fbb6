"""Task use cases: the create saga's first half, reads, cancel, watch, uploads, notifications.

The create saga (the worker does the rest, see ``worker.py``):

1. persist the task (``pending``, hold ``placing``) and its first event — one transaction;
2. place the hold in billing with the task id as idempotency key, within the time the caller
   has left (its gRPC deadline, at most ``create_budget``);
3. mark the hold ``held`` — only now can the worker dispatch it, and only this call may do it.

CreateTask answers UNAVAILABLE only after the task can no longer run: if billing cannot be
reached, or its answer does not come in time to commit before the caller's deadline, the task is
*abandoned* — ``failed`` with ``BILLING_UNAVAILABLE``, its request id freed so a retry creates a
new task — and the worker releases whatever hold billing may have placed (idempotent by the task
id; "no such hold" is final only once no placement can still land). A CreateTask call that never
finished (its process died) leaves a ``placing`` task that the worker's sweep abandons the same
way (``CREATE_INTERRUPTED``) — it never places holds itself. Every step is version-checked, so
whoever commits first (the create, a retry with the same request id, the sweep) decides, and the
others answer by what was committed. Insufficient credits (or any other definite "no" from
billing) delete the task: it was never created, and no provider is ever called.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any

from atelier_ports.clock import Clock
from atelier_ports.errors import InvalidNotification
from atelier_ports.generation import GenerationProvider
from atelier_ports.ids import IdGenerator
from atelier_ports.paging import InvalidPageToken, decode_page_token, encode_page_token
from atelier_ports.storage import ObjectStorage, UploadTarget
from atelier_tasks.application.config import TasksConfig
from atelier_tasks.application.ports import (
    BillingClient,
    ConcurrentUpdate,
    DailyQuota,
    ImageTools,
    NoMetrics,
    OutputFetcher,
    Page,
    TaskEventHub,
    TaskMetrics,
    TaskRepository,
)
from atelier_tasks.application.results import apply_result, settle
from atelier_tasks.domain.errors import (
    AdminOnly,
    BillingRefused,
    BillingUnavailable,
    InsufficientCredits,
    InvalidParams,
    InvalidUpload,
    RequestIdConflict,
    TaskNotFound,
)
from atelier_tasks.domain.model import (
    ErrorReason,
    HoldState,
    ResultImage,
    Task,
    TaskEvent,
    TaskStatus,
    TaskType,
)
from atelier_tasks.domain.params import validate_params

log = logging.getLogger("atelier.tasks")

MAX_SEQUENCE = 2**31 - 1
LOCAL_PROVIDER = "local"  # the only provider that honours params.sandbox_outcome
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
_EXTENSIONS = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp"}


@dataclass(frozen=True, slots=True)
class CreateTask:
    user_id: str
    type: TaskType
    params: Mapping[str, Any]
    input_keys: Sequence[str] = ()
    request_id: str | None = None
    # When the caller stops waiting (its gRPC deadline); the saga answers before that.
    respond_by: datetime | None = None


class CreateAbandoned(BillingUnavailable):
    """CreateTask gave up before the hold was confirmed; the task will never run."""

    def __init__(self, why: str) -> None:
        super().__init__(f"{why}; nothing was charged and nothing will run — retry later")


@dataclass(frozen=True, slots=True)
class ImageView:
    image: ResultImage
    url: str
    thumbnail_url: str


@dataclass(frozen=True, slots=True)
class TaskView:
    task: Task
    images: list[ImageView] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class MonthStats:
    month: str
    generations: int = 0
    images: int = 0
    credits_spent: int = 0


@dataclass(frozen=True, slots=True)
class UserStats:
    generations: int
    succeeded: int
    failed: int
    images: int
    credits_spent: int
    months: list[MonthStats]
    by_type: dict[TaskType, int]


# Page-token kinds: a token only continues the listing that issued it.
TASKS_PAGE = "tasks.v1.tasks"
ALL_TASKS_PAGE = "tasks.v1.all_tasks"
IMAGES_PAGE = "tasks.v1.images"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


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


class TaskApplication:
    def __init__(
        self,
        *,
        repository: TaskRepository,
        billing: BillingClient,
        providers: Mapping[str, GenerationProvider],
        storage: ObjectStorage,
        hub: TaskEventHub,
        clock: Clock,
        ids: IdGenerator,
        config: TasksConfig,
        images: ImageTools,
        fetcher: OutputFetcher | None = None,
        metrics: TaskMetrics | None = None,
    ) -> None:
        self.images = images
        self.metrics: TaskMetrics = metrics or NoMetrics()
        self.fetcher = fetcher
        self.repository = repository
        self.billing = billing
        self.providers = providers
        self.storage = storage
        self.hub = hub
        self.clock = clock
        self.ids = ids
        self.config = config

    # --- create ------------------------------------------------------------------------------

    def create_task(self, command: CreateTask) -> TaskView:
        started = self.clock.now()
        respond_by = started + self.config.create_budget
        if command.respond_by is not None:
            respond_by = min(respond_by, command.respond_by)
        validated = validate_params(
            command.type,
            command.params,
            command.input_keys,
            command.user_id,
            sandbox=self.config.routes[command.type] == LOCAL_PROVIDER,
        )
        request_id = command.request_id or None
        if request_id:
            existing = self.repository.find_by_request(command.user_id, request_id)
            if existing is not None:
                return self._replay(
                    existing, command.type, validated.params, validated.input_keys, respond_by
                )
        for key in validated.input_keys:
            upload = self.storage.head(key)
            if upload is None:
                raise InvalidParams(f"no uploaded image under {key!r}", field="input_keys")
            if upload.content_type not in self.config.upload_content_types:
                raise InvalidParams(f"{key!r} is not a supported image", field="input_keys")
        now = self.clock.now()
        day_start = datetime.combine(now.date(), time.min, tzinfo=now.tzinfo)
        quota = DailyQuota(day_start, self.config.daily_limit)
        task = Task.create(
            task_id=self.ids.new_id("task"),
            user_id=command.user_id,
            task_type=command.type,
            params=validated.params,
            input_keys=validated.input_keys,
            cost=self.config.costs[command.type],
            provider=self.config.routes[command.type],
            now=now,
            timeout=self.config.timeout,
            request_id=request_id,
        )
        stored = self.repository.add(task, quota)
        if stored.id != task.id:  # a concurrent create with the same request_id won
            return self._replay(
                stored, command.type, validated.params, validated.input_keys, respond_by
            )
        self.hub.publish(task.id)
        return TaskView(self.place_hold(stored, respond_by))

    def _replay(
        self,
        task: Task,
        task_type: TaskType,
        params: Mapping[str, Any],
        keys: tuple[str, ...],
        respond_by: datetime,
    ) -> TaskView:
        if (
            task.type is not task_type
            or dict(task.params) != dict(params)
            or task.input_keys != keys
        ):
            raise RequestIdConflict("request_id was already used for a different task")
        # Still placing: the first call is in flight or died. Placing it here is the same
        # request finishing; whoever commits first decides for both.
        task = self.place_hold(task, respond_by)
        return self.view(task)

    def place_hold(self, task: Task, respond_by: datetime) -> Task:
        """Saga steps 2 and 3 for a task still ``placing``; idempotent by the task id.

        Returns the task once its hold is confirmed (or it was cancelled meanwhile); raises
        InsufficientCredits / BillingRefused (the task is deleted) or CreateAbandoned (the task
        is failed and can never run).
        """
        if task.hold_state is not HoldState.PLACING:
            return task
        if task.abandoned:
            raise CreateAbandoned("this request was given up earlier")
        budget = self._seconds_left(respond_by) - self.config.create_margin.total_seconds()
        if budget <= 0:
            return self._abandon(task, "no time left to place the credit hold")
        try:
            self.billing.hold(task.user_id, task.id, task.cost, f"task:{task.id}", budget=budget)
        except (InsufficientCredits, BillingRefused):
            self.repository.delete(task.id)
            self.hub.publish(task.id)
            raise
        except BillingUnavailable:
            log.warning("hold for %s in doubt: the task is abandoned and released", task.id)
            return self._abandon(task, "billing is unavailable")
        if self._seconds_left(respond_by) < self.config.create_margin.total_seconds():
            # Held, but too late to answer the caller with it: the caller will see an error, so
            # the task must not run. The worker releases the hold.
            return self._abandon(task, "the credit hold took too long")
        while True:
            if task.abandoned:  # the sweep or a retry gave up on it first
                raise CreateAbandoned("billing did not confirm the hold in time")
            task.hold_placed(self.clock.now())
            try:
                self.repository.save(task)
                break
            except ConcurrentUpdate:
                fresh = self.repository.get(task.id)
                if fresh is None:
                    raise TaskNotFound(f"task {task.id} vanished") from None
                task = fresh
        self.hub.publish(task.id)
        if task.needs_settlement:  # cancelled while the hold was being placed
            task = settle(self, task)
        return task

    def _abandon(self, task: Task, why: str, reason: str = ErrorReason.BILLING_UNAVAILABLE) -> Task:
        """Make a task still placing its hold unable to ever run, then raise CreateAbandoned —
        unless someone else confirmed its hold first, in which case that task is the answer."""
        while True:
            if task.hold_state is not HoldState.PLACING:
                return task  # a retry with the same request id placed it: it stands
            if task.is_terminal:
                break  # abandoned (or cancelled) already; the worker settles it
            task.abandon(self.clock.now(), reason, why)
            try:
                self.repository.save(task)
            except ConcurrentUpdate:
                fresh = self.repository.get(task.id)
                if fresh is None:
                    break
                task = fresh
                continue
            self.hub.publish(task.id)
            break
        raise CreateAbandoned(why)

    def abandon_orphan(self, task: Task) -> bool:
        """The worker's sweep: a task still placing long after its CreateTask call must have
        ended (the process died) can never run. True if this call abandoned it."""
        try:
            self._abandon(task, "the request was interrupted", ErrorReason.CREATE_INTERRUPTED)
        except CreateAbandoned:
            return True
        return False

    def _seconds_left(self, respond_by: datetime) -> float:
        return (respond_by - self.clock.now()).total_seconds()

    # --- reads ---------------------------------------------------------------------------------

    def get_task(self, user_id: str, task_id: str) -> TaskView:
        return self.view(self._own(user_id, task_id))

    def view(self, task: Task) -> TaskView:
        images = self.repository.images_of([task.id]).get(task.id, [])
        return TaskView(task, [self._image_view(i) for i in images])

    def list_tasks(
        self,
        user_id: str,
        page_size: int,
        page_token: str,
        task_type: TaskType | None = None,
        status: TaskStatus | None = None,
    ) -> tuple[list[TaskView], str]:
        return self._list(TASKS_PAGE, user_id, page_size, page_token, task_type, status)

    def list_all_tasks(
        self,
        *,
        caller_is_admin: bool,
        page_size: int,
        page_token: str,
        task_type: TaskType | None = None,
        status: TaskStatus | None = None,
    ) -> tuple[list[TaskView], str]:
        """Every user's tasks (the admin console)."""
        if not caller_is_admin:
            raise AdminOnly("listing every user's tasks needs the admin role")
        return self._list(ALL_TASKS_PAGE, None, page_size, page_token, task_type, status)

    def _list(
        self,
        kind: str,
        user_id: str | None,
        page_size: int,
        page_token: str,
        task_type: TaskType | None,
        status: TaskStatus | None,
    ) -> tuple[list[TaskView], str]:
        page = self._page(page_size, page_token, kind)
        tasks = self.repository.list_tasks(
            user_id, Page(page.size + 1, page.after), task_type, status
        )
        more = len(tasks) > page.size
        tasks = tasks[: page.size]
        images = self.repository.images_of([t.id for t in tasks])
        views = [TaskView(t, [self._image_view(i) for i in images.get(t.id, [])]) for t in tasks]
        token = encode_cursor(kind, tasks[-1].created_at, tasks[-1].id) if more and tasks else ""
        return views, token

    def list_images(
        self, user_id: str, page_size: int, page_token: str, task_type: TaskType | None = None
    ) -> tuple[list[ImageView], str]:
        page = self._page(page_size, page_token, IMAGES_PAGE)
        images = self.repository.list_images(user_id, Page(page.size + 1, page.after), task_type)
        more = len(images) > page.size
        images = images[: page.size]
        last = images[-1] if more and images else None
        token = encode_cursor(IMAGES_PAGE, last.created_at, last.id) if last else ""
        return [self._image_view(i) for i in images], token

    def user_stats(self, user_id: str) -> UserStats:
        months: dict[str, MonthStats] = {}
        by_type: dict[TaskType, int] = {}
        generations = succeeded = failed = images = spent = 0
        for s in self.repository.summaries(user_id):
            generations += 1
            by_type[s.type] = by_type.get(s.type, 0) + 1
            month = s.created_at.strftime("%Y-%m")
            m = months.get(month, MonthStats(month))
            charged = s.cost if s.status is TaskStatus.SUCCEEDED else 0
            months[month] = MonthStats(
                month, m.generations + 1, m.images + s.images, m.credits_spent + charged
            )
            succeeded += s.status is TaskStatus.SUCCEEDED
            failed += s.status is TaskStatus.FAILED
            images += s.images
            spent += charged
        return UserStats(
            generations=generations,
            succeeded=succeeded,
            failed=failed,
            images=images,
            credits_spent=spent,
            months=[months[k] for k in sorted(months, reverse=True)],
            by_type=by_type,
        )

    # --- cancel ------------------------------------------------------------------------------

    def cancel_task(self, user_id: str, task_id: str) -> TaskView:
        task = self._own(user_id, task_id)
        while True:
            provider_job = task.provider_job_id
            task.cancel(self.clock.now())
            try:
                self.repository.save(task)
                break
            except ConcurrentUpdate:
                task = self._own(user_id, task_id)
        self.hub.publish(task.id)
        if provider_job and task.provider in self.providers:
            try:
                self.providers[task.provider].cancel(provider_job)
            except Exception:  # best effort: the result is ignored anyway
                log.warning("provider cancel failed for %s", task.id, exc_info=True)
        task = settle(self, task)
        return self.view(task)

    # --- watch -------------------------------------------------------------------------------

    def watch(
        self, user_id: str, task_id: str, after_sequence: int, stop: Callable[[], bool]
    ) -> Iterator[TaskEvent]:
        """Replay events after ``after_sequence``, then follow; ends after the terminal event.

        A finished task ends the stream as soon as what was asked for is replayed — at once when
        ``after_sequence`` is at or past its terminal event (a browser's EventSource reconnects
        with the last id it saw, and must not be left waiting for an event that never comes).
        """
        self._own(user_id, task_id)
        subscription = self.hub.subscribe(task_id)
        # Sequences are 32-bit in the database; anything larger is simply "after every event".
        last = min(max(after_sequence, 0), MAX_SEQUENCE)
        try:
            while True:
                for event in self.repository.events_after(task_id, last):
                    yield event
                    last = event.sequence
                    if event.terminal:
                        return
                # Read after the events: a task that is terminal now has its terminal event
                # stored, so if none came back above it was at or before ``last``.
                current = self.repository.get(task_id, user_id)
                if current is None:
                    return  # deleted (its hold could not be placed)
                if current.is_terminal and current.last_sequence <= last:
                    return
                if stop():
                    return
                subscription.wait(self.config.watch_poll_seconds)
        finally:
            subscription.close()

    # --- uploads -----------------------------------------------------------------------------

    def create_upload(
        self, user_id: str, content_type: str, size: int, filename: str
    ) -> tuple[UploadTarget, int, tuple[str, ...]]:
        allowed = self.config.upload_content_types
        if content_type not in allowed:
            raise InvalidUpload(
                f"content type must be one of {', '.join(allowed)}", field="content_type"
            )
        if size <= 0 or size > self.config.upload_max_bytes:
            raise InvalidUpload(
                f"size must be between 1 and {self.config.upload_max_bytes} bytes",
                field="size_bytes",
            )
        stem = _SAFE_NAME.sub("-", filename.rsplit(".", 1)[0])[:40].strip("-.") or "image"
        key = f"{user_id}/uploads/{self.ids.new_id('up')}/{stem}.{_EXTENSIONS[content_type]}"
        target = self.storage.upload_target(
            key,
            (content_type,),
            min(size, self.config.upload_max_bytes),
            self.config.upload_ttl_seconds,
        )
        return target, self.config.upload_max_bytes, (content_type,)

    # --- provider notifications --------------------------------------------------------------

    def handle_notification(
        self, provider_name: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[bool, str]:
        provider = self.providers.get(provider_name)
        if provider is None:
            raise InvalidNotification(f"unknown provider {provider_name!r}")
        note = provider.parse_notification(headers, body)
        task = self.repository.find_by_provider_job(provider_name, note.provider_job_id)
        if task is None or task.is_terminal:
            return False, task.id if task else ""
        applied = apply_result(self, task, note.result)
        return applied, task.id

    # --- helpers -------------------------------------------------------------------------------

    def _own(self, user_id: str, task_id: str) -> Task:
        task = self.repository.get(task_id, user_id) if task_id else None
        if task is None:
            raise TaskNotFound(f"task {task_id!r} not found")
        return task

    def _page(self, size: int, token: str, kind: str) -> Page:
        if size < 0:
            raise InvalidParams("page_size must not be negative", field="page_size")
        size = min(size or self.config.default_page_size, self.config.max_page_size)
        return Page(size, decode_cursor(token, kind) if token else None)

    def _image_view(self, image: ResultImage) -> ImageView:
        ttl = self.config.url_ttl_seconds
        return ImageView(
            image,
            self.storage.signed_url(image.key, ttl),
            self.storage.signed_url(image.thumbnail_key, ttl),
        )

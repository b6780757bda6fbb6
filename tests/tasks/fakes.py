"""Fake* implementations of the tasks service's ports (no mocks: they implement the protocols)."""

from __future__ import annotations

import copy
import hashlib
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from types import TracebackType
from typing import Self

from atelier_ports.errors import InvalidNotification, ProviderRejected, ProviderUnavailable
from atelier_tasks.application.ports import (
    BillingClient,
    ClaimKind,
    ConcurrentUpdate,
    DailyQuota,
    ImageInfo,
    ImageTools,
    Page,
    TaskMetrics,
    TaskRepository,
    TaskSummary,
    TasksUnitOfWork,
)
from atelier_tasks.application.ports.decisions import (
    DecisionFilter,
    ModerationDecisions,
    ModerationRecord,
)
from atelier_tasks.application.ports.generation import (
    GeneratedOutput,
    GenerationNotification,
    GenerationProvider,
    GenerationRequest,
    GenerationResult,
    GenerationState,
    ProviderStyle,
)
from atelier_tasks.application.ports.moderation import (
    ImageToModerate,
    Moderation,
    ModerationDecision,
    ModerationLabel,
    ModerationSubject,
    Verdict,
)
from atelier_tasks.application.ports.storage import (
    ObjectNotFound,
    ObjectStorage,
    StoredObject,
    UploadTarget,
)
from atelier_tasks.domain.errors import (
    BillingUnavailable,
    DailyLimitReached,
    InsufficientCredits,
)
from atelier_tasks.domain.model import (
    HoldState,
    ResultImage,
    Task,
    TaskEvent,
    TaskStatus,
    TaskType,
)
from tests.support.fakes import FakeClock

START = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def clock_at_start() -> FakeClock:
    """The shared FakeClock, at the moment these tests' fixtures are written for."""
    return FakeClock(START)


@dataclass
class FakeHold:
    user_id: str
    amount: int
    status: str = "held"


@dataclass
class FakeBillingClient:
    """Balances and idempotent holds, like the real billing service."""

    balances: dict[str, int] = field(default_factory=dict)
    holds: dict[str, FakeHold] = field(default_factory=dict)
    down: bool = False
    lose_answers: bool = False
    on_hold: Callable[[], None] | None = None  # runs after a successful hold (e.g. time passes)
    calls: list[tuple[str, str]] = field(default_factory=list)
    budgets: list[float | None] = field(default_factory=list)

    def fund(self, user_id: str, credits: int) -> None:
        self.balances[user_id] = self.balances.get(user_id, 0) + credits

    def hold(
        self,
        user_id: str,
        request_id: str,
        amount: int,
        reference: str,
        budget: float | None = None,
    ) -> None:
        self.calls.append(("hold", request_id))
        self.budgets.append(budget)
        if self.down:
            raise BillingUnavailable("billing is down")
        if request_id not in self.holds:
            if self.balances.get(user_id, 0) < amount:
                raise InsufficientCredits("not enough credits")
            self.balances[user_id] -= amount
            self.holds[request_id] = FakeHold(user_id, amount)
        if self.lose_answers:  # placed, but the caller never hears so
            raise BillingUnavailable("the answer was lost")
        if self.on_hold is not None:
            self.on_hold()

    def capture(self, user_id: str, request_id: str) -> None:
        self.calls.append(("capture", request_id))
        if self.down:
            raise BillingUnavailable("billing is down")
        hold = self.holds[request_id]
        assert hold.status in ("held", "captured"), f"capture of a {hold.status} hold"
        hold.status = "captured"

    def release(self, user_id: str, request_id: str) -> bool:
        self.calls.append(("release", request_id))
        if self.down:
            raise BillingUnavailable("billing is down")
        hold = self.holds.get(request_id)
        if hold is None:
            return False
        assert hold.status in ("held", "released"), f"release of a {hold.status} hold"
        if hold.status == "held":
            self.balances[user_id] += hold.amount
            hold.status = "released"
        return True

    def held(self, user_id: str) -> int:
        return sum(
            h.amount for h in self.holds.values() if h.user_id == user_id and h.status == "held"
        )


class FakeProvider:
    """A scriptable provider: answers from ``script`` (task id → results), else succeeds."""

    def __init__(self, name: str = "local", style: ProviderStyle = ProviderStyle.SYNCHRONOUS):
        self._name = name
        self._style = style
        self.submitted: list[str] = []
        self.requests: list[GenerationRequest] = []
        # Seconds the (fake) clock moves while a submit runs: a provider that takes time.
        self.takes: tuple[FakeClock, float] | None = None
        self.polled: list[str] = []
        self.cancelled: list[str] = []
        self.script: dict[str, list[GenerationResult | Exception]] = {}
        self.poll_script: dict[str, list[GenerationResult]] = {}
        self.outputs = 1
        self.lock = threading.Lock()

    @property
    def name(self) -> str:
        return self._name

    @property
    def style(self) -> ProviderStyle:
        return self._style

    def submit(self, request: GenerationRequest) -> GenerationResult:
        with self.lock:
            self.submitted.append(request.task_id)
            self.requests.append(request)
        if self.takes is not None:
            clock, seconds = self.takes
            clock.advance(seconds=seconds)
        with self.lock:
            script = self.script.get(request.task_id)
            answer = script.pop(0) if script else None
        if isinstance(answer, Exception):
            raise answer
        if answer is not None:
            return answer
        if self._style is not ProviderStyle.SYNCHRONOUS:
            return GenerationResult(
                GenerationState.RUNNING, provider_job_id=f"job-{request.task_id}"
            )
        return succeeded(request.task_id, self.outputs)

    def poll(self, provider_job_id: str) -> GenerationResult:
        self.polled.append(provider_job_id)
        script = self.poll_script.get(provider_job_id)
        if script:
            return script.pop(0)
        return GenerationResult(GenerationState.RUNNING, provider_job_id=provider_job_id)

    def cancel(self, provider_job_id: str) -> None:
        self.cancelled.append(provider_job_id)

    def parse_notification(self, headers: Mapping[str, str], body: bytes) -> GenerationNotification:
        if headers.get("x-fake-signature") == "hint":  # an unsigned hint (like RunningHub's)
            job = body.decode()
            running = GenerationResult(GenerationState.RUNNING, provider_job_id=job)
            return GenerationNotification(f"n-{job}", job, running, poll_now=True)
        if headers.get("x-fake-signature") != "ok":
            raise InvalidNotification("bad signature")
        job = body.decode()
        return GenerationNotification(f"n-{job}", job, succeeded(job, 1))


def png_bytes(tag: str) -> bytes:
    return b"\x89PNG" + hashlib.sha256(tag.encode()).digest()


def succeeded(tag: str, n: int) -> GenerationResult:
    outputs = [GeneratedOutput("image/png", data=png_bytes(f"{tag}-{i}")) for i in range(n)]
    return GenerationResult(
        GenerationState.SUCCEEDED, provider_job_id=f"job-{tag}", outputs=outputs
    )


def failed(message: str = "boom", transient: bool = False) -> GenerationResult:
    return GenerationResult(GenerationState.FAILED, error=message, transient=transient)


def unavailable() -> ProviderUnavailable:
    return ProviderUnavailable("provider timed out")


class FakeImageTools:
    def inspect(self, data: bytes) -> ImageInfo:
        if not data.startswith(b"\x89PNG"):
            raise ValueError("not an image")
        return ImageInfo("image/png", 64, 64)

    def thumbnail(self, data: bytes, max_side: int) -> tuple[bytes, str]:
        return b"thumb:" + data[:8], "image/jpeg"


class FakeStorage:
    def __init__(self) -> None:
        self.objects: dict[str, tuple[bytes, str]] = {}

    def put(self, key: str, data: bytes, content_type: str) -> StoredObject:
        self.objects[key] = (data, content_type)
        return StoredObject(key, len(data), content_type, hashlib.sha256(data).hexdigest())

    def get(self, key: str) -> bytes:
        if key not in self.objects:
            raise ObjectNotFound(key)
        return self.objects[key][0]

    def head(self, key: str) -> StoredObject | None:
        if key not in self.objects:
            return None
        data, content_type = self.objects[key]
        return StoredObject(key, len(data), content_type, hashlib.sha256(data).hexdigest())

    def delete(self, key: str) -> None:
        self.objects.pop(key, None)

    def signed_url(self, key: str, expires_in_seconds: int) -> str:
        return f"https://files.test/{key}?ttl={expires_in_seconds}"

    def upload_target(
        self, key: str, content_types: tuple[str, ...], max_size: int, expires_in_seconds: int
    ) -> UploadTarget:
        return UploadTarget(key, "PUT", f"https://files.test/{key}", START, {})


class FakeModerationDecisions:
    """Decisions in memory (the ModerationDecisions port)."""

    def __init__(self) -> None:
        self.records: dict[str, ModerationRecord] = {}
        self.lock = threading.RLock()

    def add(self, records: Sequence[ModerationRecord]) -> None:
        with self.lock:
            for record in records:
                assert record.id not in self.records, f"decision {record.id} twice"
                self.records[record.id] = record

    def get(self, decision_id: str) -> ModerationRecord | None:
        return self.records.get(decision_id)

    def of_task(self, task_id: str) -> list[ModerationRecord]:
        with self.lock:
            found = [r for r in self.records.values() if r.task_id == task_id]
        return sorted(found, key=lambda r: (r.created_at, r.id))

    def allowed_content(self, task_id: str, subject: ModerationSubject) -> set[str]:
        return {
            r.content_sha256
            for r in self.of_task(task_id)
            if r.subject is subject and r.verdict is Verdict.ALLOWED
        }

    def list(
        self, where: DecisionFilter, size: int, after: tuple[datetime, str] | None
    ) -> list[ModerationRecord]:
        with self.lock:
            found = [
                r
                for r in self.records.values()
                if (where.verdict is None or r.verdict is where.verdict)
                and (where.user_id is None or r.user_id == where.user_id)
                and (where.task_id is None or r.task_id == where.task_id)
                and (after is None or (r.created_at, r.id) < after)
            ]
        found.sort(key=lambda r: (r.created_at, r.id), reverse=True)
        return found[:size]

    def overturn(self, decision_id: str, at: datetime, by: str, rerun_task_id: str | None) -> bool:
        with self.lock:
            record = self.records.get(decision_id)
            if record is None or record.overturned_at is not None:
                return False
            self.records[decision_id] = replace(
                record, overturned_at=at, overturned_by=by, rerun_task_id=rerun_task_id
            )
            return True


class FakeTaskRepository:
    """In memory, with the same optimistic-concurrency and leasing rules as the SQL one."""

    def __init__(self) -> None:
        self.decisions = FakeModerationDecisions()
        self.tasks: dict[str, Task] = {}
        self.events: dict[str, list[TaskEvent]] = {}
        self.images: dict[str, list[ResultImage]] = {}
        self.lock = threading.RLock()

    def _copy(self, task: Task) -> Task:
        fresh = copy.deepcopy(task)
        fresh.new_events = []
        return fresh

    def add(self, task: Task, quota: DailyQuota | None = None) -> Task:
        with self.lock:
            if task.request_id:
                existing = self.find_by_request(task.user_id, task.request_id)
                if existing is not None:
                    return existing
            if quota is not None:
                day = task.created_at.astimezone(UTC).date()
                today = sum(
                    1
                    for t in self.tasks.values()
                    if t.user_id == task.user_id
                    and t.created_at.astimezone(UTC).date() == day
                    and not t.abandoned
                )
                if today >= quota.limit:
                    raise DailyLimitReached("daily limit reached")
            task.version = 1
            self.events[task.id] = list(task.new_events)
            task.new_events.clear()
            self.tasks[task.id] = self._copy(task)
            return task

    def save(self, task: Task, images: Sequence[ResultImage] = ()) -> None:
        with self.lock:
            stored = self.tasks.get(task.id)
            if stored is None or stored.version != task.version:
                raise ConcurrentUpdate(task.id)
            self.events[task.id].extend(task.new_events)
            task.new_events.clear()
            task.version += 1
            self.tasks[task.id] = self._copy(task)
            self.images.setdefault(task.id, []).extend(images)

    def delete(self, task_id: str) -> None:
        with self.lock:
            self.tasks.pop(task_id, None)
            self.events.pop(task_id, None)
            self.images.pop(task_id, None)

    def get(self, task_id: str, user_id: str | None = None) -> Task | None:
        with self.lock:
            task = self.tasks.get(task_id)
            if task is None or (user_id is not None and task.user_id != user_id):
                return None
            return self._copy(task)

    def get_with_images(self, task_id: str, user_id: str) -> tuple[Task, list[ResultImage]] | None:
        with self.lock:
            task = self.get(task_id, user_id)
            if task is None:
                return None
            return task, sorted(self.images.get(task_id, []), key=lambda i: i.index)

    def find_by_request(self, user_id: str, request_id: str) -> Task | None:
        with self.lock:
            for task in self.tasks.values():
                if task.user_id == user_id and task.request_id == request_id:
                    return self._copy(task)
        return None

    def find_by_provider_job(self, provider: str, job_id: str) -> Task | None:
        with self.lock:
            for task in self.tasks.values():
                if task.provider == provider and task.provider_job_id == job_id:
                    return self._copy(task)
        return None

    def _newest_first(self, items: list, page: Page) -> list:  # type: ignore[type-arg]
        items.sort(key=lambda x: (x.created_at, x.id), reverse=True)
        if page.after is not None:
            items = [x for x in items if (x.created_at, x.id) < page.after]
        return items[: page.size]

    def list_tasks(
        self,
        user_id: str | None,
        page: Page,
        task_type: TaskType | None,
        status: TaskStatus | None,
    ) -> list[Task]:
        with self.lock:
            found = [
                self._copy(t)
                for t in self.tasks.values()
                if (user_id is None or t.user_id == user_id)
                and (task_type is None or t.type is task_type)
                and (status is None or t.status is status)
            ]
        return self._newest_first(found, page)

    def images_of(self, task_ids: Sequence[str]) -> dict[str, list[ResultImage]]:
        with self.lock:
            return {t: list(self.images[t]) for t in task_ids if self.images.get(t)}

    def list_images(
        self, user_id: str, page: Page, task_type: TaskType | None
    ) -> list[ResultImage]:
        with self.lock:
            found = [
                i
                for images in self.images.values()
                for i in images
                if i.user_id == user_id and (task_type is None or i.task_type is task_type)
            ]
        return self._newest_first(found, page)

    def events_after(self, task_id: str, sequence: int) -> list[TaskEvent]:
        with self.lock:
            return [e for e in self.events.get(task_id, []) if e.sequence > sequence]

    def summaries(self, user_id: str) -> list[TaskSummary]:
        with self.lock:
            return [
                TaskSummary(t.created_at, t.type, t.status, t.cost, len(self.images.get(t.id, [])))
                for t in self.tasks.values()
                if t.user_id == user_id
            ]

    def claim(
        self,
        kind: ClaimKind,
        now: datetime,
        owner: str,
        lease_until: datetime,
        limit: int,
        start: Callable[[Task], None] | None = None,
    ) -> list[Task]:
        with self.lock:
            due: list[Task] = []
            for t in sorted(self.tasks.values(), key=lambda t: (t.created_at, t.id)):
                free = t.lease_expires_at is None or t.lease_expires_at < now
                if not free or t.deadline_at <= now:
                    continue
                if kind is ClaimKind.DISPATCH:
                    ok = t.hold_state is HoldState.HELD and (
                        (
                            t.status is TaskStatus.PENDING
                            and t.next_attempt_at is not None
                            and t.next_attempt_at <= now
                        )
                        or (
                            t.status is TaskStatus.PROCESSING
                            and t.provider_job_id is None
                            and (t.next_attempt_at is None or t.next_attempt_at <= now)
                        )
                    )
                else:
                    ok = (
                        t.status is TaskStatus.PROCESSING
                        and t.provider_job_id is not None
                        and t.next_poll_at is not None
                        and t.next_poll_at <= now
                    )
                if ok:
                    due.append(t)
            out = []
            for stored in due[:limit]:
                t = self._copy(stored)
                t.lease_owner, t.lease_expires_at = owner, lease_until
                if start is not None:
                    start(t)
                self.events[t.id].extend(t.new_events)
                t.new_events.clear()
                t.version += 1
                self.tasks[t.id] = self._copy(t)
                out.append(t)
            return out

    def timed_out(self, now: datetime, limit: int) -> list[str]:
        with self.lock:
            return [
                t.id
                for t in self.tasks.values()
                if not t.is_terminal
                and t.deadline_at < now
                and t.hold_state is not HoldState.PLACING
            ][:limit]

    def unsettled(self, now: datetime, limit: int) -> list[str]:
        with self.lock:
            return [
                t.id
                for t in self.tasks.values()
                if t.needs_settlement
                and (
                    t.hold_state is HoldState.HELD
                    or t.next_attempt_at is None
                    or t.next_attempt_at <= now
                )
            ][:limit]

    def holds_in_doubt(self, created_before: datetime, limit: int) -> list[str]:
        with self.lock:
            return [
                t.id
                for t in self.tasks.values()
                if t.hold_state is HoldState.PLACING
                and not t.is_terminal
                and t.created_at < created_before
            ][:limit]


class FakeMetrics:
    """Records what the saga reports (the TaskMetrics port)."""

    def __init__(self) -> None:
        self.finished: list[tuple[str, str, str | None]] = []
        self.calls: list[tuple[str, str, str, float]] = []

    def task_finished(self, task_type: str, status: str, reason: str | None) -> None:
        self.finished.append((task_type, status, reason))

    def provider_call(self, provider: str, call: str, outcome: str, seconds: float) -> None:
        self.calls.append((provider, call, outcome, seconds))


def _conforms(
    billing: FakeBillingClient,
    provider: FakeProvider,
    images: FakeImageTools,
    storage: FakeStorage,
    repository: FakeTaskRepository,
    metrics: FakeMetrics,
) -> tuple[
    BillingClient, GenerationProvider, ImageTools, ObjectStorage, TaskRepository, TaskMetrics
]:
    return billing, provider, images, storage, repository, metrics  # mypy: fakes match ports


class FakeTasksUnitOfWork:
    """The TasksUnitOfWork over a FakeTaskRepository: its writes land at once (each is atomic in
    the fake), so commit and rollback only record what the use case asked for."""

    def __init__(self, repository: FakeTaskRepository) -> None:
        self.tasks: TaskRepository = repository
        self.moderation: ModerationDecisions = repository.decisions
        self.committed = False

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    def commit(self) -> None:
        self.committed = True

    def rollback(self) -> None:
        return None


def _conforms_uow(uow: FakeTasksUnitOfWork) -> TasksUnitOfWork:
    return uow  # mypy: the fake matches the port


class FakeModeration:
    """A Moderation that refuses text containing one of ``blocked_words`` and images whose bytes
    contain one of ``blocked_bytes``; ``down`` makes it unable to answer (ProviderUnavailable),
    ``refusing`` makes it refuse the requests themselves (ProviderRejected)."""

    def __init__(self, threshold: float = 0.8) -> None:
        self.threshold = threshold
        self.blocked_words: set[str] = {"forbidden"}
        self.blocked_bytes: set[bytes] = set()
        self.down = False
        self.refusing = False
        self.texts: list[str] = []
        self.images: list[ImageToModerate] = []
        self.lock = threading.Lock()
        self._n = 0

    @property
    def name(self) -> str:
        return "fake"

    def _answer(self, hit: str | None) -> ModerationDecision:
        if self.down:
            raise ProviderUnavailable("moderation is down")
        if self.refusing:
            raise ProviderRejected("moderation refuses our credentials")
        with self.lock:
            self._n += 1
            request_id = f"req-{self._n}"
        if hit is None:
            return ModerationDecision(Verdict.ALLOWED, self.name, (), request_id)
        label = ModerationLabel(hit, 0.99)
        return ModerationDecision(Verdict.REJECTED, self.name, (label,), request_id)

    def check_text(self, text: str) -> ModerationDecision:
        with self.lock:
            self.texts.append(text)
        hit = next((w for w in sorted(self.blocked_words) if w in text.lower()), None)
        return self._answer(f"Blocked:{hit}" if hit else None)

    def check_image(self, image: ImageToModerate) -> ModerationDecision:
        with self.lock:
            self.images.append(image)
        hit = any(b in image.data for b in self.blocked_bytes)
        return self._answer("Explicit" if hit else None)


def _conforms_moderation(
    moderation: FakeModeration, decisions: FakeModerationDecisions
) -> tuple[Moderation, ModerationDecisions]:
    return moderation, decisions  # mypy: the fakes match their ports

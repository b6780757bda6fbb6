"""The task aggregate and its state machine.

``pending → processing → succeeded | failed | cancelled``. Every status change appends a
:class:`TaskEvent` with the next per-task sequence number (1, 2, 3 … without gaps). The credit hold
has its own small machine (``placing → held → captured | released``) driven by the create saga.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from atelier_tasks.domain.errors import InvalidTransition, TaskNotCancellable


class TaskType(enum.StrEnum):
    TEXT_TO_IMAGE = "text_to_image"
    BASIC_CLEAN = "basic_clean"
    MODEL_POSE12 = "model_pose12"


class TaskStatus(enum.StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset({TaskStatus.SUCCEEDED, TaskStatus.FAILED, TaskStatus.CANCELLED})

_ALLOWED: Mapping[TaskStatus, frozenset[TaskStatus]] = {
    TaskStatus.PENDING: frozenset({TaskStatus.PROCESSING, TaskStatus.FAILED, TaskStatus.CANCELLED}),
    TaskStatus.PROCESSING: frozenset(
        {TaskStatus.SUCCEEDED, TaskStatus.FAILED, TaskStatus.CANCELLED}
    ),
    TaskStatus.SUCCEEDED: frozenset(),
    TaskStatus.FAILED: frozenset(),
    TaskStatus.CANCELLED: frozenset(),
}


class HoldState(enum.StrEnum):
    # The task row exists; the hold may or may not exist in billing yet. Only the CreateTask
    # call that is placing it may move it to HELD; a terminal task still PLACING (abandoned,
    # or cancelled meanwhile) owes a release of whatever billing may hold under its id.
    PLACING = "placing"
    HELD = "held"
    CAPTURED = "captured"
    RELEASED = "released"


class ErrorReason(enum.StrEnum):
    PROVIDER_FAILED = "PROVIDER_FAILED"
    PROVIDER_REJECTED = "PROVIDER_REJECTED"
    RETRIES_EXHAUSTED = "RETRIES_EXHAUSTED"
    TIMEOUT = "TIMEOUT"
    CANCELLED_BY_USER = "CANCELLED_BY_USER"
    STORAGE_FAILED = "STORAGE_FAILED"
    # The create saga gave up before the hold was confirmed (CreateTask answered UNAVAILABLE):
    # billing was unreachable or too slow for the caller's deadline …
    BILLING_UNAVAILABLE = "BILLING_UNAVAILABLE"
    # … or the CreateTask call never finished (its process died); found by the worker's sweep.
    CREATE_INTERRUPTED = "CREATE_INTERRUPTED"
    # Content moderation refused an input photo or a result (the hold is released) …
    CONTENT_REJECTED = "CONTENT_REJECTED"
    # … or the moderation provider refused the request itself (bad credentials, an image it
    # cannot read): the content could not be checked, so it is not used (never fails open).
    MODERATION_FAILED = "MODERATION_FAILED"


# Tasks that were never created as far as their caller knows (it got a 5xx): they never run,
# are never charged and do not count against the daily limit.
ABANDONED_REASONS = frozenset({ErrorReason.BILLING_UNAVAILABLE, ErrorReason.CREATE_INTERRUPTED})


@dataclass(frozen=True, slots=True)
class TaskEvent:
    task_id: str
    sequence: int
    status: TaskStatus
    attempts: int
    at: datetime
    error_reason: str | None = None

    @property
    def terminal(self) -> bool:
        return self.status.terminal


@dataclass(frozen=True, slots=True)
class ResultImage:
    id: str
    task_id: str
    user_id: str
    task_type: TaskType
    index: int
    key: str
    thumbnail_key: str
    content_type: str
    size: int
    width: int
    height: int
    sha256: str
    created_at: datetime


@dataclass(eq=False)
class Task:
    id: str
    user_id: str
    type: TaskType
    params: dict[str, Any]
    input_keys: tuple[str, ...]
    cost: int
    provider: str
    created_at: datetime
    deadline_at: datetime
    request_id: str | None = None
    status: TaskStatus = TaskStatus.PENDING
    hold_state: HoldState = HoldState.PLACING
    attempts: int = 0
    error_reason: str | None = None
    error_message: str | None = None
    provider_job_id: str | None = None
    updated_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    next_attempt_at: datetime | None = None
    next_poll_at: datetime | None = None
    polls: int = 0
    lease_owner: str | None = None
    lease_expires_at: datetime | None = None
    last_sequence: int = 0
    version: int = 0
    new_events: list[TaskEvent] = field(default_factory=list)

    @classmethod
    def create(
        cls,
        *,
        task_id: str,
        user_id: str,
        task_type: TaskType,
        params: dict[str, Any],
        input_keys: tuple[str, ...],
        cost: int,
        provider: str,
        now: datetime,
        timeout: timedelta,
        request_id: str | None,
    ) -> Task:
        task = cls(
            id=task_id,
            user_id=user_id,
            type=task_type,
            params=params,
            input_keys=input_keys,
            cost=cost,
            provider=provider,
            created_at=now,
            updated_at=now,
            deadline_at=now + timeout,
            next_attempt_at=now,
            request_id=request_id,
        )
        task._record(now)
        return task

    # --- queries -----------------------------------------------------------------------------

    @property
    def is_terminal(self) -> bool:
        return self.status.terminal

    @property
    def needs_settlement(self) -> bool:
        """Terminal with a hold still open: capture (succeeded) or release (otherwise). A hold
        still PLACING on a terminal task is released (billing may have placed it)."""
        return self.is_terminal and self.hold_state in (HoldState.HELD, HoldState.PLACING)

    @property
    def abandoned(self) -> bool:
        """Given up by the create saga: the caller was told UNAVAILABLE; it never runs."""
        return self.status is TaskStatus.FAILED and self.error_reason in ABANDONED_REASONS

    @property
    def settlement_is_capture(self) -> bool:
        return self.status is TaskStatus.SUCCEEDED

    # --- the hold ------------------------------------------------------------------------------

    def hold_placed(self, now: datetime) -> None:
        if self.hold_state is HoldState.PLACING:
            self.hold_state = HoldState.HELD
            self.updated_at = now

    def settled(self, now: datetime) -> None:
        if not self.needs_settlement:
            raise InvalidTransition(f"task {self.id} has no open hold to settle")
        self.hold_state = HoldState.CAPTURED if self.settlement_is_capture else HoldState.RELEASED
        self.next_attempt_at = None
        self.updated_at = now

    def release_later(self, now: datetime, at: datetime) -> None:
        """Billing has no hold under this id yet, but one still in flight may land: look again
        at ``at`` (a hold is only known never to exist once no placement can still arrive)."""
        if not (self.is_terminal and self.hold_state is HoldState.PLACING):
            raise InvalidTransition(f"task {self.id} has no hold in doubt")
        self.next_attempt_at = at
        self.updated_at = now

    def abandon(self, now: datetime, reason: str, message: str) -> None:
        """The create saga gives up before the hold was confirmed: the task can never run.

        Its request id is freed, so the caller's retry (told "nothing was done") creates a new
        task; the hold, if billing placed one, is released by the settlement that follows.
        """
        if self.hold_state is not HoldState.PLACING or self.is_terminal:
            raise InvalidTransition(f"task {self.id} is past its hold placement")
        self.request_id = None
        self.fail(now, reason, message)

    # --- the lifecycle -------------------------------------------------------------------------

    def start_attempt(self, now: datetime) -> None:
        """Hand the task to its provider (again, after a transient failure or a crash)."""
        if self.hold_state is HoldState.PLACING:
            raise InvalidTransition(f"task {self.id} is not paid for yet")
        if self.status is not TaskStatus.PENDING and self.status is not TaskStatus.PROCESSING:
            raise InvalidTransition(f"task {self.id} is {self.status}")
        self.attempts += 1
        self.provider_job_id = None
        self.next_attempt_at = None
        if self.status is TaskStatus.PENDING:
            self.started_at = now
            self._move(TaskStatus.PROCESSING, now)
        else:  # a retry: watchers see the attempt count change
            self.updated_at = now
            self._record(now)

    def wait_for_moderation(self, now: datetime, at: datetime, message: str) -> None:
        """The moderation provider could not answer before the task reached its provider:
        dispatch again at ``at``. The attempt never reached the provider, so it does not count
        (only the task's deadline bounds the wait)."""
        self._require(TaskStatus.PROCESSING)
        self.attempts = max(self.attempts - 1, 0)
        self.provider_job_id = None
        self.next_attempt_at = at
        self.error_message = message
        self.updated_at = now
        self.release_lease()

    def running_at_provider(self, job_id: str, now: datetime, first_poll_at: datetime) -> None:
        self._require(TaskStatus.PROCESSING)
        self.provider_job_id = job_id
        self.next_poll_at = first_poll_at
        self.polls = 0
        self.updated_at = now

    def polled_still_running(self, now: datetime, next_poll_at: datetime) -> None:
        self._require(TaskStatus.PROCESSING)
        self.polls += 1
        self.next_poll_at = next_poll_at
        self.updated_at = now

    def poll_soon(self, now: datetime) -> bool:
        """A hint that the provider may be done (an unsigned webhook): poll at ``now`` unless a
        poll is due already or under way (leased). False when nothing changes."""
        if self.status is not TaskStatus.PROCESSING or self.provider_job_id is None:
            return False
        if self.lease_expires_at is not None and self.lease_expires_at > now:
            return False
        if self.next_poll_at is not None and self.next_poll_at <= now:
            return False
        self.next_poll_at = now
        self.updated_at = now
        return True

    def retry_later(self, now: datetime, at: datetime, message: str) -> None:
        """A transient provider failure: the worker dispatches the task again at ``at``."""
        self._require(TaskStatus.PROCESSING)
        self.provider_job_id = None
        self.next_attempt_at = at
        self.error_message = message
        self.updated_at = now

    def succeed(self, now: datetime) -> None:
        self._move(TaskStatus.SUCCEEDED, now)
        self.error_reason = None
        self.error_message = None
        self._finish(now)

    def fail(self, now: datetime, reason: str, message: str) -> None:
        self.error_reason = reason
        self.error_message = message
        self._move(TaskStatus.FAILED, now)
        self._finish(now)

    def cancel(self, now: datetime) -> None:
        if self.is_terminal:
            raise TaskNotCancellable(f"task {self.id} is already {self.status}")
        self.error_reason = ErrorReason.CANCELLED_BY_USER
        self.error_message = "cancelled by the user"
        self._move(TaskStatus.CANCELLED, now)
        self._finish(now)

    def release_lease(self) -> None:
        self.lease_owner = None
        self.lease_expires_at = None

    # --- internals -----------------------------------------------------------------------------

    def _require(self, status: TaskStatus) -> None:
        if self.status is not status:
            raise InvalidTransition(f"task {self.id} is {self.status}, not {status}")

    def _move(self, to: TaskStatus, now: datetime) -> None:
        if to not in _ALLOWED[self.status]:
            raise InvalidTransition(f"task {self.id}: {self.status} → {to} is not allowed")
        self.status = to
        self.updated_at = now
        self._record(now)

    def _finish(self, now: datetime) -> None:
        self.finished_at = now
        self.next_attempt_at = None
        self.next_poll_at = None
        self.release_lease()

    def _record(self, now: datetime) -> None:
        self.last_sequence += 1
        self.new_events.append(
            TaskEvent(
                task_id=self.id,
                sequence=self.last_sequence,
                status=self.status,
                attempts=self.attempts,
                at=now,
                error_reason=self.error_reason,
            )
        )

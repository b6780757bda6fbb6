"""Tasks as the gateway sees it: the data ``TasksGateway`` (ports.py) takes and returns.

Plain frozen dataclasses; enum values are the API's lower-case names (``"succeeded"``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

TaskType = Literal["text_to_image", "basic_clean", "model_pose12"]
TaskStatus = Literal["pending", "processing", "succeeded", "failed", "cancelled"]
UploadMethod = Literal["POST", "PUT"]
ModerationVerdict = Literal["allowed", "rejected"]
ModerationSubject = Literal["prompt", "input_image", "result_image"]


@dataclass(frozen=True, slots=True)
class NewUpload:
    content_type: str
    size: int
    filename: str | None


@dataclass(frozen=True, slots=True)
class UploadCredentials:
    """STS temporary keys for the COS JavaScript SDK (cn market)."""

    tmp_secret_id: str
    tmp_secret_key: str
    session_token: str
    expires_at: datetime | None
    bucket: str
    region: str
    prefix: str


@dataclass(frozen=True, slots=True)
class UploadTarget:
    key: str
    method: UploadMethod
    url: str
    fields: Mapping[str, str]
    headers: Mapping[str, str]
    expires_at: datetime | None
    max_size: int
    content_types: Sequence[str]
    credentials: UploadCredentials | None = None


@dataclass(frozen=True, slots=True)
class NewTask:
    type: TaskType
    params: Mapping[str, object]
    input_upload_id: str | None = None


@dataclass(frozen=True, slots=True)
class TaskFilter:
    status: TaskStatus | None = None
    type: TaskType | None = None
    user_id: str | None = None  # administrators: one user's tasks


@dataclass(frozen=True, slots=True)
class Image:
    id: str
    task_id: str
    index: int
    url: str
    thumbnail_url: str
    width: int
    height: int
    content_type: str
    size: int
    sha256: str
    task_type: TaskType
    created_at: datetime | None


@dataclass(frozen=True, slots=True)
class Task:
    id: str
    type: TaskType
    status: TaskStatus
    params: Mapping[str, object]
    input_upload_ids: Sequence[str]
    cost: int
    attempts: int
    error: str | None
    error_message: str | None
    images: Sequence[Image]
    created_at: datetime | None
    updated_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    deadline_at: datetime | None
    user_id: str = ""  # the owner
    version: int = 0  # grows with every change of the task (the newer of two views is higher)
    urls_expire_at: datetime | None = None  # with images: their signed URLs stop working then


@dataclass(frozen=True, slots=True)
class TaskChange:
    """One change of a task, from the tasks service's change feed: the task's version after
    the change and its view, decoded only when asked for (most changes are of tasks this
    process does not keep); ``view`` None: the task no longer exists."""

    task_id: str
    version: int
    view: Callable[[], Task] | None

    @classmethod
    def of(cls, task: Task) -> TaskChange:
        return cls(task.id, task.version, lambda: task)

    @classmethod
    def deleted(cls, task_id: str) -> TaskChange:
        return cls(task_id, 0, None)


@dataclass(frozen=True, slots=True)
class TaskEvent:
    task_id: str
    sequence: int
    status: TaskStatus
    error: str | None
    attempts: int
    terminal: bool
    created_at: datetime | None


@dataclass(frozen=True, slots=True)
class MonthStats:
    month: str
    tasks: int
    images: int
    credits: int


@dataclass(frozen=True, slots=True)
class TypeStats:
    type: TaskType
    tasks: int


@dataclass(frozen=True, slots=True)
class UserStats:
    total_tasks: int
    succeeded: int
    failed: int
    total_images: int
    credits_spent: int
    by_month: Sequence[MonthStats] = field(default_factory=tuple)
    by_type: Sequence[TypeStats] = field(default_factory=tuple)


@dataclass(frozen=True, slots=True)
class ModerationLabel:
    name: str
    confidence: float


@dataclass(frozen=True, slots=True)
class ModerationDecision:
    """One content moderation decision of the tasks service (admin console)."""

    id: str
    task_id: str | None  # None: a refused prompt (no task was created)
    user_id: str
    subject: ModerationSubject
    verdict: ModerationVerdict
    labels: Sequence[ModerationLabel]
    provider: str
    request_id: str | None  # the provider's id of the check
    created_at: datetime | None
    overturned_at: datetime | None = None
    overturned_by: str | None = None
    rerun_task_id: str | None = None  # the free re-run an overturn started


@dataclass(frozen=True, slots=True)
class DecisionFilter:
    verdict: ModerationVerdict | None = None
    user_id: str | None = None


def is_simple_json(value: object) -> bool:
    """Whether task parameters are JSON every party reads alike: every number fits a double
    (RFC 8259's interoperable range; no task parameter needs more) and every text is valid
    UTF-8 (what the wire and the databases carry)."""
    if value is None or isinstance(value, bool):
        return True
    if isinstance(value, int):
        try:
            float(value)
        except OverflowError:
            return False
        return True
    if isinstance(value, float):
        return True
    if isinstance(value, str):
        return _utf8(value)
    if isinstance(value, Mapping):
        return all(isinstance(k, str) and _utf8(k) and is_simple_json(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return all(is_simple_json(v) for v in value)
    return False


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True

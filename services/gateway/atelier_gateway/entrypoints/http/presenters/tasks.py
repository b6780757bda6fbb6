"""Uploads, tasks, live events, images and stats: the response models and their presenters.

Tasks and images — the hot path (``GET /v1/tasks/{id}``, ``POST /v1/tasks``, the listings) — are
presented as plain JSON objects built directly: validating our own output through pydantic cost
more than the rest of the gateway's work on a read. Their models (``Task``, ``Image``, the pages)
still describe them in the OpenAPI document, and tests hold every object to its model (the unit
tests in test_presenters.py, schemathesis against the running API).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from atelier_gateway.application import task_views as dto
from atelier_gateway.application.calls import Page
from atelier_gateway.application.task_views import TaskStatus, TaskType
from atelier_gateway.entrypoints.http.contract import ResponseModel, Timestamp
from atelier_gateway.entrypoints.http.presenters import rfc3339


class StsCredentials(ResponseModel):
    """Temporary storage keys for the COS JavaScript SDK (cn market)."""

    tmp_secret_id: str
    tmp_secret_key: str
    session_token: str
    expires_at: Timestamp
    bucket: str
    region: str
    prefix: str


class UploadTarget(ResponseModel):
    upload_id: str
    key: str
    method: Literal["POST", "PUT"]
    url: str
    fields: dict[str, str] | None = Field(description="POST: every entry goes into the form")
    headers: dict[str, str] | None = Field(description="PUT: send these headers")
    expires_at: Timestamp | None
    max_size: int
    content_types: list[str]
    credentials: StsCredentials | None = Field(
        description="cn market: STS temporary keys for a browser upload; null elsewhere"
    )


class Image(ResponseModel):
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
    created_at: Timestamp | None


class Task(ResponseModel):
    id: str
    type: TaskType
    status: TaskStatus
    params: dict[str, Any]
    input_upload_ids: list[str]
    cost: int
    attempts: int
    error: str | None = Field(description="Machine-readable failure reason, once failed")
    error_message: str | None
    images: list[Image]
    created_at: Timestamp | None
    updated_at: Timestamp | None
    started_at: Timestamp | None
    finished_at: Timestamp | None
    deadline_at: Timestamp | None


class TaskPage(ResponseModel):
    items: list[Task]
    next_page_token: str


class ImagePage(ResponseModel):
    items: list[Image]
    next_page_token: str


class TaskEvent(ResponseModel):
    """The ``data`` of one ``status`` event of the stream."""

    task_id: str
    sequence: int
    status: TaskStatus
    error: str | None
    attempts: int
    terminal: bool
    created_at: Timestamp | None


class MonthStats(ResponseModel):
    month: str
    tasks: int
    images: int
    credits: int


class TypeStats(ResponseModel):
    type: TaskType
    tasks: int


class Stats(ResponseModel):
    total_tasks: int
    succeeded: int
    failed: int
    total_images: int
    credits_spent: int
    by_month: list[MonthStats]
    by_type: list[TypeStats]


def upload_target(u: dto.UploadTarget) -> UploadTarget:
    return UploadTarget(
        upload_id=u.key,
        key=u.key,
        method=u.method,
        url=u.url,
        fields=dict(u.fields) if u.method == "POST" else None,
        headers=dict(u.headers) if u.method == "PUT" else None,
        expires_at=rfc3339(u.expires_at),
        max_size=u.max_size,
        content_types=list(u.content_types),
        credentials=None if u.credentials is None else sts_credentials(u.credentials),
    )


def sts_credentials(c: dto.UploadCredentials) -> StsCredentials:
    return StsCredentials(
        tmp_secret_id=c.tmp_secret_id,
        tmp_secret_key=c.tmp_secret_key,
        session_token=c.session_token,
        expires_at=rfc3339(c.expires_at) or "",
        bucket=c.bucket,
        region=c.region,
        prefix=c.prefix,
    )


JsonObject = dict[str, Any]


def image(i: dto.Image) -> JsonObject:
    """An ``Image``, as JSON."""
    return {
        "id": i.id,
        "task_id": i.task_id,
        "index": i.index,
        "url": i.url,
        "thumbnail_url": i.thumbnail_url,
        "width": i.width,
        "height": i.height,
        "content_type": i.content_type,
        "size": i.size,
        "sha256": i.sha256,
        "task_type": i.task_type,
        "created_at": rfc3339(i.created_at),
    }


def task(t: dto.Task) -> JsonObject:
    """A ``Task``, as JSON."""
    return {
        "id": t.id,
        "type": t.type,
        "status": t.status,
        "params": dict(t.params),
        "input_upload_ids": list(t.input_upload_ids),
        "cost": t.cost,
        "attempts": t.attempts,
        "error": t.error,
        "error_message": t.error_message,
        "images": [image(i) for i in t.images],
        "created_at": rfc3339(t.created_at),
        "updated_at": rfc3339(t.updated_at),
        "started_at": rfc3339(t.started_at),
        "finished_at": rfc3339(t.finished_at),
        "deadline_at": rfc3339(t.deadline_at),
    }


def task_page(page: Page[dto.Task]) -> JsonObject:
    """A ``TaskPage``, as JSON."""
    return {"items": [task(t) for t in page.items], "next_page_token": page.next_page_token}


def image_page(page: Page[dto.Image]) -> JsonObject:
    """An ``ImagePage``, as JSON."""
    return {"items": [image(i) for i in page.items], "next_page_token": page.next_page_token}


def task_event(e: dto.TaskEvent) -> TaskEvent:
    return TaskEvent(
        task_id=e.task_id,
        sequence=e.sequence,
        status=e.status,
        error=e.error,
        attempts=e.attempts,
        terminal=e.terminal,
        created_at=rfc3339(e.created_at),
    )


def stats(s: dto.UserStats) -> Stats:
    return Stats(
        total_tasks=s.total_tasks,
        succeeded=s.succeeded,
        failed=s.failed,
        total_images=s.total_images,
        credits_spent=s.credits_spent,
        by_month=[
            MonthStats(month=m.month, tasks=m.tasks, images=m.images, credits=m.credits)
            for m in s.by_month
        ],
        by_type=[TypeStats(type=t.type, tasks=t.tasks) for t in s.by_type],
    )

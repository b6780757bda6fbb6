"""Uploads, tasks, live events, images and stats (F14-F23), proxied to tasks over gRPC."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any, Literal

from aiohttp import web
from google.protobuf import json_format, struct_pb2
from pydantic import ConfigDict, Field

from atelier_gateway.adapters.grpc_clients import RemoteCallError
from atelier_gateway.entrypoints.http.billing_routes import path_id
from atelier_gateway.entrypoints.http.context import (
    METRICS,
    OPEN_STREAMS,
    authenticate,
    container,
    require_admin,
)
from atelier_gateway.entrypoints.http.contract import (
    JsonObject,
    Operation,
    PageQuery,
    RequestModel,
    ResponseModel,
    Timestamp,
    body_model,
    operation,
    query_model,
    read_model,
    respond,
)
from atelier_gateway.entrypoints.http.idempotent import IDEMPOTENCY_HEADER, run_idempotent
from atelier_gateway.entrypoints.http.jsonio import read_body
from atelier_gateway.entrypoints.http.presenters import enum_name, ts
from atelier_gateway.entrypoints.http.problems import validation_error

routes = web.RouteTableDef()

TaskType = Literal["text_to_image", "basic_clean", "model_pose12"]
TaskStatus = Literal["pending", "processing", "succeeded", "failed", "cancelled"]
TERMINAL = frozenset({"succeeded", "failed", "cancelled"})
SSE_HEARTBEAT_SECONDS = 15.0
SSE_TICK_SECONDS = 1.0
SSE_MAX_SECONDS = 3600.0
LAST_EVENT_ID = "Last-Event-ID"


def _pb() -> Any:
    from atelier.tasks.v1 import tasks_pb2

    return tasks_pb2


def _type_value(value: str) -> int:
    return int(_pb().TaskType.Value("TASK_TYPE_" + value.upper()))


def _status_value(value: str) -> int:
    return int(_pb().TaskStatus.Value("TASK_STATUS_" + value.upper()))


def _plain(value: Any) -> Any:
    """Struct numbers come back as floats; give integral ones back as integers."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


# --- models ------------------------------------------------------------------------------------


class CreateUploadRequest(RequestModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"content_type": "image/png", "size": 204800}]}
    )

    content_type: str = Field(min_length=1, max_length=100, examples=["image/png"])
    size: int = Field(ge=1, description="Bytes; at most the configured upload limit")
    filename: str | None = Field(None, max_length=255)


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


class CreateTaskRequest(RequestModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"type": "text_to_image", "params": {"prompt": "a red chair"}}]
        }
    )

    type: TaskType
    params: JsonObject = Field(default_factory=dict)
    input_upload_id: str | None = Field(None, min_length=1, max_length=512)


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


class TaskListQuery(PageQuery):
    status: TaskStatus | None = None
    type: TaskType | None = None


class ImageListQuery(PageQuery):
    type: TaskType | None = None


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


def image_json(image: Any) -> Image:
    pb = _pb()
    return Image(
        id=image.id,
        task_id=image.task_id,
        index=image.index,
        url=image.url,
        thumbnail_url=image.thumbnail_url,
        width=image.width,
        height=image.height,
        content_type=image.content_type,
        size=image.size_bytes,
        sha256=image.sha256,
        task_type=enum_name(image.task_type, pb.TaskType, "TASK_TYPE_"),  # type: ignore[arg-type]
        created_at=ts(image, "create_time"),
    )


def task_json(task: Any) -> Task:
    pb = _pb()
    return Task(
        id=task.id,
        type=enum_name(task.type, pb.TaskType, "TASK_TYPE_"),  # type: ignore[arg-type]
        status=enum_name(task.status, pb.TaskStatus, "TASK_STATUS_"),  # type: ignore[arg-type]
        params=_plain(json_format.MessageToDict(task.params)),
        input_upload_ids=list(task.input_keys),
        cost=task.cost,
        attempts=task.attempts,
        error=task.error_reason or None,
        error_message=task.error_message or None,
        images=[image_json(i) for i in task.images],
        created_at=ts(task, "create_time"),
        updated_at=ts(task, "update_time"),
        started_at=ts(task, "start_time"),
        finished_at=ts(task, "finish_time"),
        deadline_at=ts(task, "deadline_time"),
    )


def event_json(event: Any) -> TaskEvent:
    pb = _pb()
    return TaskEvent(
        task_id=event.task_id,
        sequence=event.sequence,
        status=enum_name(event.status, pb.TaskStatus, "TASK_STATUS_"),  # type: ignore[arg-type]
        error=event.error_reason or None,
        attempts=event.attempts,
        terminal=event.terminal,
        created_at=ts(event, "create_time"),
    )


# --- routes ------------------------------------------------------------------------------------


@operation(
    routes,
    "POST",
    "/v1/uploads",
    Operation(
        "Start a direct upload to storage",
        status=201,
        body=CreateUploadRequest,
        response=UploadTarget,
    ),
)
async def create_upload(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    body = await read_model(request, CreateUploadRequest)
    limit = container(request).settings.gateway_max_upload_bytes
    if body.size > limit:
        raise validation_error("size", f"size must be at most {limit} bytes")
    reply = await container(request).tasks.call(
        "CreateUpload",
        _pb().CreateUploadRequest(
            content_type=body.content_type, size_bytes=body.size, filename=body.filename or ""
        ),
        caller,
    )
    u = reply.upload
    return respond(
        UploadTarget(
            upload_id=u.key,
            key=u.key,
            method=u.method,
            url=u.url,
            fields=dict(u.fields) if u.method == "POST" else None,
            headers=dict(u.headers) if u.method == "PUT" else None,
            expires_at=ts(u, "expire_time"),
            max_size=u.max_size_bytes,
            content_types=list(u.content_types),
            credentials=None,  # the cn market's STS keys are not issued yet
        ),
        status=201,
    )


@operation(
    routes,
    "POST",
    "/v1/tasks",
    Operation(
        "Create a generation task (Idempotency-Key supported)",
        status=201,
        body=CreateTaskRequest,
        response=Task,
        headers=(IDEMPOTENCY_HEADER,),
        errors=(402, 409),
    ),
)
async def create_task(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    raw = await read_body(request)
    body = body_model(CreateTaskRequest, raw, request)
    struct = struct_pb2.Struct()
    try:
        struct.update(body.params)
    except (ValueError, TypeError, OverflowError) as e:
        raise validation_error("params", "params must be a JSON object of simple values") from e
    task_type = _type_value(body.type)
    upload_id = body.input_upload_id

    async def produce(request_id: str | None) -> web.Response:
        reply = await container(request).tasks.call(
            "CreateTask",
            _pb().CreateTaskRequest(
                type=task_type,
                params=struct,
                input_keys=[upload_id] if upload_id else [],
                request_id=request_id or "",
            ),
            caller,
            timeout=15.0,
        )
        return respond(task_json(reply.task), status=201)

    return await run_idempotent(request, caller, "POST /v1/tasks", raw, produce)


def _filters(q: TaskListQuery) -> dict[str, int]:
    filters: dict[str, int] = {}
    if q.type is not None:
        filters["type"] = _type_value(q.type)
    if q.status is not None:
        filters["status"] = _status_value(q.status)
    return filters


@operation(
    routes,
    "GET",
    "/v1/tasks",
    Operation("Your tasks, newest first", response=TaskPage, query=TaskListQuery),
)
async def list_tasks(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    q = query_model(request, TaskListQuery)
    message = _pb().ListTasksRequest(page_size=q.page_size, page_token=q.page_token, **_filters(q))
    reply = await container(request).tasks.call("ListTasks", message, caller)
    return respond(
        TaskPage(items=[task_json(t) for t in reply.tasks], next_page_token=reply.next_page_token)
    )


@operation(
    routes,
    "GET",
    "/v1/admin/tasks",
    Operation(
        "Admin: every user's tasks, newest first",
        response=TaskPage,
        query=TaskListQuery,
        auth="admin",
    ),
)
async def admin_list_tasks(request: web.Request) -> web.Response:
    caller = await require_admin(request)
    q = query_model(request, TaskListQuery)
    message = _pb().ListAllTasksRequest(
        page_size=q.page_size, page_token=q.page_token, **_filters(q)
    )
    reply = await container(request).tasks.call("ListAllTasks", message, caller)
    return respond(
        TaskPage(items=[task_json(t) for t in reply.tasks], next_page_token=reply.next_page_token)
    )


@operation(routes, "GET", "/v1/tasks/{task_id}", Operation("One task", response=Task))
async def get_task(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    task_id = path_id(request, "task_id")
    reply = await container(request).tasks.call(
        "GetTask", _pb().GetTaskRequest(task_id=task_id), caller
    )
    return respond(task_json(reply.task))


@operation(
    routes,
    "POST",
    "/v1/tasks/{task_id}/cancel",
    Operation("Cancel a task (credits released)", response=Task, errors=(409,)),
)
async def cancel_task(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    task_id = path_id(request, "task_id")
    reply = await container(request).tasks.call(
        "CancelTask", _pb().CancelTaskRequest(task_id=task_id), caller, timeout=15.0
    )
    return respond(task_json(reply.task))


_MAX_SEQUENCE = 2**63 - 1


def _last_event_id(request: web.Request) -> int:
    raw = request.headers.get(LAST_EVENT_ID) or request.query.get("last_event_id") or "0"
    if len(raw) > 20 or not raw.isascii() or not raw.isdigit():
        raise validation_error(LAST_EVENT_ID, "Last-Event-ID must be a non-negative integer", 400)
    value = int(raw)
    if value > _MAX_SEQUENCE:
        raise validation_error(LAST_EVENT_ID, "Last-Event-ID is out of range", 400)
    return value


@operation(
    routes,
    "GET",
    "/v1/tasks/{task_id}/events",
    Operation(
        "Live task status (server-sent events; one `status` event per change, `id:` its "
        "sequence number; ends after the terminal event)",
        response=TaskEvent,
        media_type="text/event-stream",
        headers=(LAST_EVENT_ID,),
        fuzz=False,
    ),
)
async def task_events(request: web.Request) -> web.StreamResponse:
    caller = await authenticate(request)
    task_id = path_id(request, "task_id")
    after = _last_event_id(request)
    tasks = container(request).tasks
    # Answer 404 (as a problem) before the stream starts if the task is not the caller's.
    await tasks.call("GetTask", _pb().GetTaskRequest(task_id=task_id), caller)

    queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=64)
    done = object()

    async def pump() -> None:
        try:
            async for reply in tasks.stream(
                "WatchTask",
                _pb().WatchTaskRequest(task_id=task_id, after_sequence=after),
                caller,
                timeout=SSE_MAX_SECONDS,
            ):
                await queue.put(reply.event)
        except RemoteCallError as e:
            await queue.put(e)
        finally:
            await queue.put(done)

    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-store",
            "X-Accel-Buffering": "no",
        }
    )
    await response.prepare(request)
    await response.write(b"retry: 2000\n\n")
    reader = asyncio.create_task(pump())
    metrics = request.app[METRICS]
    streams = request.app[OPEN_STREAMS]
    me = asyncio.current_task()
    if me is not None:
        streams.add(me)
    idle = 0.0
    try:
        while True:
            try:
                item = await asyncio.wait_for(queue.get(), SSE_TICK_SECONDS)
            except TimeoutError:
                # A client that left is noticed within a tick, so its watch stream on the tasks
                # service is released promptly.
                if request.transport is None or request.transport.is_closing():
                    return response
                idle += SSE_TICK_SECONDS
                if idle >= SSE_HEARTBEAT_SECONDS:
                    idle = 0.0
                    await response.write(b": keep-alive\n\n")
                continue
            idle = 0.0
            if item is done:
                break
            if isinstance(item, RemoteCallError):
                payload = json.dumps({"code": "stream_error", "detail": item.status})
                await response.write(f"event: error\ndata: {payload}\n\n".encode())
                break
            event = event_json(item)
            if event.terminal:
                metrics.task_outcomes.labels(event.status).inc()
            data = json.dumps(event.model_dump(mode="json"))
            chunk = f"id: {item.sequence}\nevent: status\ndata: {data}\n\n"
            await response.write(chunk.encode())
    except ConnectionResetError:
        return response  # the browser went away; it resumes with Last-Event-ID
    finally:
        if me is not None:
            streams.discard(me)
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await reader
    await response.write_eof()
    return response


async def close_open_streams(app: web.Application) -> None:
    """On shutdown, end live event streams (clients reconnect to another replica)."""
    streams = app[OPEN_STREAMS]
    for task in tuple(streams):
        task.cancel()


@operation(
    routes,
    "GET",
    "/v1/images",
    Operation("Your images (gallery), newest first", response=ImagePage, query=ImageListQuery),
)
async def list_images(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    q = query_model(request, ImageListQuery)
    filters = {"type": _type_value(q.type)} if q.type is not None else {}
    reply = await container(request).tasks.call(
        "ListImages",
        _pb().ListImagesRequest(page_size=q.page_size, page_token=q.page_token, **filters),
        caller,
    )
    return respond(
        ImagePage(
            items=[image_json(i) for i in reply.images], next_page_token=reply.next_page_token
        )
    )


@operation(routes, "GET", "/v1/me/stats", Operation("Your generation statistics", response=Stats))
async def stats(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    reply = await container(request).tasks.call("GetUserStats", _pb().GetUserStatsRequest(), caller)
    pb = _pb()
    return respond(
        Stats(
            total_tasks=reply.generations,
            succeeded=reply.succeeded,
            failed=reply.failed,
            total_images=reply.images,
            credits_spent=reply.credits_spent,
            by_month=[
                MonthStats(
                    month=m.month, tasks=m.generations, images=m.images, credits=m.credits_spent
                )
                for m in reply.months
            ],
            by_type=[
                TypeStats(
                    type=enum_name(t.type, pb.TaskType, "TASK_TYPE_"),  # type: ignore[arg-type]
                    tasks=t.count,
                )
                for t in reply.by_type
            ],
        )
    )

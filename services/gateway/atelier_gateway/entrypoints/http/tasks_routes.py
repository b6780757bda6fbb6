"""Uploads, tasks, live events, images and stats (F14-F23): tasks through the ``TasksGateway``
port."""

from __future__ import annotations

import asyncio
import contextlib
import json

from aiohttp import web
from atelier_common.grpc_client import RemoteCallError
from pydantic import ConfigDict, Field

from atelier_gateway.application.calls import PageRequest
from atelier_gateway.application.task_views import (
    NewTask,
    NewUpload,
    TaskFilter,
    TaskStatus,
    TaskType,
    is_simple_json,
)
from atelier_gateway.application.task_views import TaskEvent as TaskEventDTO
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
    body_model,
    operation,
    path_id,
    query_model,
    read_model,
    respond,
)
from atelier_gateway.entrypoints.http.idempotent import IDEMPOTENCY_HEADER, run_idempotent
from atelier_gateway.entrypoints.http.jsonio import json_response, read_body
from atelier_gateway.entrypoints.http.presenters import admin as admin_present
from atelier_gateway.entrypoints.http.presenters import tasks as present
from atelier_gateway.entrypoints.http.presenters.admin import AdminTaskPage
from atelier_gateway.entrypoints.http.presenters.tasks import (
    ImagePage,
    Stats,
    Task,
    TaskEvent,
    TaskPage,
    UploadTarget,
)
from atelier_gateway.entrypoints.http.problems import validation_error

routes = web.RouteTableDef()

SSE_HEARTBEAT_SECONDS = 15.0
SSE_TICK_SECONDS = 1.0
SSE_MAX_SECONDS = 3600.0
LAST_EVENT_ID = "Last-Event-ID"


class CreateUploadRequest(RequestModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"content_type": "image/png", "size": 204800}]}
    )

    content_type: str = Field(min_length=1, max_length=100, examples=["image/png"])
    size: int = Field(ge=1, description="Bytes; at most the configured upload limit")
    filename: str | None = Field(None, max_length=255)


class CreateTaskRequest(RequestModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"type": "text_to_image", "params": {"prompt": "a red chair"}}]
        }
    )

    type: TaskType
    params: JsonObject = Field(default_factory=dict)
    input_upload_id: str | None = Field(None, min_length=1, max_length=512)


class TaskListQuery(PageQuery):
    status: TaskStatus | None = None
    type: TaskType | None = None


class ImageListQuery(PageQuery):
    type: TaskType | None = None


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
    limit = container(request).settings.upload_max_bytes
    if body.size > limit:
        raise validation_error("size", f"size must be at most {limit} bytes")
    upload = NewUpload(content_type=body.content_type, size=body.size, filename=body.filename)
    target = await container(request).tasks.create_upload(caller, upload)
    return respond(present.upload_target(target), status=201)


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
    if not is_simple_json(body.params):
        raise validation_error("params", "params must be a JSON object of simple values")
    new_task = NewTask(type=body.type, params=body.params, input_upload_id=body.input_upload_id)

    async def produce(request_id: str | None) -> web.Response:
        task = await container(request).tasks.create_task(caller, new_task, request_id)
        return json_response(present.task(task), status=201)

    return await run_idempotent(request, caller, "POST /v1/tasks", raw, produce)


def _page(q: PageQuery) -> PageRequest:
    return PageRequest(page_size=q.page_size, page_token=q.page_token)


def _where(q: TaskListQuery) -> TaskFilter:
    return TaskFilter(status=q.status, type=q.type)


@operation(
    routes,
    "GET",
    "/v1/tasks",
    Operation("Your tasks, newest first", response=TaskPage, query=TaskListQuery),
)
async def list_tasks(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    q = query_model(request, TaskListQuery)
    page = await container(request).tasks.list_tasks(caller, _page(q), _where(q))
    return json_response(present.task_page(page))


@operation(
    routes,
    "GET",
    "/v1/admin/tasks",
    Operation(
        "Admin: every user's tasks, newest first (each with its owner's user_id)",
        response=AdminTaskPage,
        query=TaskListQuery,
        auth="admin",
    ),
)
async def admin_list_tasks(request: web.Request) -> web.Response:
    caller = await require_admin(request)
    q = query_model(request, TaskListQuery)
    page = await container(request).tasks.list_all_tasks(caller, _page(q), _where(q))
    return json_response(admin_present.admin_task_page(page))


@operation(routes, "GET", "/v1/tasks/{task_id}", Operation("One task", response=Task))
async def get_task(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    task_id = path_id(request, "task_id")
    # The process's read model, or GetTask (docs/ARCHITECTURE.md, "Task reads"); the body is
    # rendered once per view kept.
    entry = await container(request).read_task(caller, task_id)
    body = entry.body
    if body is None:
        body = entry.body = json.dumps(present.task(entry.task), separators=(",", ":")).encode()
    return web.Response(body=body, content_type="application/json")


@operation(
    routes,
    "POST",
    "/v1/tasks/{task_id}/cancel",
    Operation("Cancel a task (credits released)", response=Task, errors=(409,)),
)
async def cancel_task(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    task_id = path_id(request, "task_id")
    c = container(request)
    # Kept, so this process never answers an older state after telling the client this one.
    entry = await c.read_task.remember(task_id, c.tasks.cancel_task(caller, task_id))
    return json_response(present.task(entry.task))


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
    reads = container(request).task_reads
    # Answer 404 (as a problem) before the stream starts if the task is not the caller's.
    await tasks.get_task(caller, task_id)

    queue: asyncio.Queue[TaskEventDTO | RemoteCallError | None] = asyncio.Queue(maxsize=64)

    async def pump() -> None:
        try:
            async for event in tasks.watch_task(caller, task_id, after, SSE_MAX_SECONDS):
                # What this client is told here, its reads in this process never go back on.
                reads.forget_if_behind(event)
                await queue.put(event)
        except RemoteCallError as e:
            await queue.put(e)
        finally:
            await queue.put(None)  # the end of the stream

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
                # asyncio.timeout, not wait_for: Python 3.11's wait_for drops a cancellation
                # (shutdown ending this stream) that lands as the item arrives.
                async with asyncio.timeout(SSE_TICK_SECONDS):
                    item = await queue.get()
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
            if item is None:
                break
            if isinstance(item, RemoteCallError):
                payload = json.dumps({"code": "stream_error", "detail": item.status})
                await response.write(f"event: error\ndata: {payload}\n\n".encode())
                break
            event = present.task_event(item)
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
    with contextlib.suppress(ConnectionResetError):  # the client left right after the last event
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
    page = await container(request).tasks.list_images(caller, _page(q), q.type)
    return json_response(present.image_page(page))


@operation(routes, "GET", "/v1/me/stats", Operation("Your generation statistics", response=Stats))
async def stats(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    user_stats = await container(request).tasks.get_user_stats(caller)
    return respond(present.stats(user_stats))

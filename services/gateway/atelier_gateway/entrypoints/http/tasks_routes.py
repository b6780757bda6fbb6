"""Uploads, tasks, live events, images and stats (F14-F23), proxied to tasks over gRPC."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from aiohttp import web
from google.protobuf import json_format, struct_pb2

from atelier_gateway.adapters.grpc_clients import Caller, RemoteCallError
from atelier_gateway.entrypoints.http.billing_routes import path_id
from atelier_gateway.entrypoints.http.context import (
    METRICS,
    OPEN_STREAMS,
    authenticate,
    container,
    require_admin,
)
from atelier_gateway.entrypoints.http.idempotent import run_idempotent
from atelier_gateway.entrypoints.http.jsonio import (
    json_response,
    opt_object,
    opt_str,
    page_params,
    parse_json_object,
    read_body,
    read_json_object,
    reject_unknown,
    req_str,
)
from atelier_gateway.entrypoints.http.presenters import enum_name, ts
from atelier_gateway.entrypoints.http.problems import validation_error

routes = web.RouteTableDef()

TASK_TYPES = ("text_to_image", "basic_clean", "model_pose12")
TASK_STATUSES = ("pending", "processing", "succeeded", "failed", "cancelled")
TERMINAL = frozenset({"succeeded", "failed", "cancelled"})
SSE_HEARTBEAT_SECONDS = 15.0
SSE_TICK_SECONDS = 1.0
SSE_MAX_SECONDS = 3600.0


def _pb() -> Any:
    from atelier.tasks.v1 import tasks_pb2

    return tasks_pb2


def _task_type(value: str, field: str) -> int:
    if value not in TASK_TYPES:
        raise validation_error(field, f"{field} must be one of {', '.join(TASK_TYPES)}")
    return int(_pb().TaskType.Value("TASK_TYPE_" + value.upper()))


def _task_status(value: str) -> int:
    if value not in TASK_STATUSES:
        raise validation_error(
            "status", f"status must be one of {', '.join(TASK_STATUSES)}", status=400
        )
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


def image_json(image: Any) -> dict[str, Any]:
    pb = _pb()
    return {
        "id": image.id,
        "task_id": image.task_id,
        "index": image.index,
        "url": image.url,
        "thumbnail_url": image.thumbnail_url,
        "width": image.width,
        "height": image.height,
        "content_type": image.content_type,
        "size": image.size_bytes,
        "sha256": image.sha256,
        "task_type": enum_name(image.task_type, pb.TaskType, "TASK_TYPE_"),
        "created_at": ts(image, "create_time"),
    }


def task_json(task: Any) -> dict[str, Any]:
    pb = _pb()
    return {
        "id": task.id,
        "type": enum_name(task.type, pb.TaskType, "TASK_TYPE_"),
        "status": enum_name(task.status, pb.TaskStatus, "TASK_STATUS_"),
        "params": _plain(json_format.MessageToDict(task.params)),
        "input_upload_ids": list(task.input_keys),
        "cost": task.cost,
        "attempts": task.attempts,
        "error": task.error_reason or None,
        "error_message": task.error_message or None,
        "images": [image_json(i) for i in task.images],
        "created_at": ts(task, "create_time"),
        "updated_at": ts(task, "update_time"),
        "started_at": ts(task, "start_time"),
        "finished_at": ts(task, "finish_time"),
        "deadline_at": ts(task, "deadline_time"),
    }


def event_json(event: Any) -> dict[str, Any]:
    pb = _pb()
    return {
        "task_id": event.task_id,
        "sequence": event.sequence,
        "status": enum_name(event.status, pb.TaskStatus, "TASK_STATUS_"),
        "error": event.error_reason or None,
        "attempts": event.attempts,
        "terminal": event.terminal,
        "created_at": ts(event, "create_time"),
    }


@routes.post("/v1/uploads")
async def create_upload(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    data = await read_json_object(request)
    reject_unknown(data, {"content_type", "size", "filename"})
    content_type = req_str(data, "content_type", max_len=100)
    size = data.get("size")
    if size is None:
        raise validation_error("size", "size is required")
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise validation_error("size", "size must be a positive integer")
    filename = opt_str(data, "filename", max_len=255) or ""
    reply = await container(request).tasks.call(
        "CreateUpload",
        _pb().CreateUploadRequest(content_type=content_type, size_bytes=size, filename=filename),
        caller,
    )
    u = reply.upload
    return json_response(
        {
            "upload_id": u.key,
            "key": u.key,
            "method": u.method,
            "url": u.url,
            "fields": dict(u.fields),
            "headers": dict(u.headers),
            "expires_at": ts(u, "expire_time"),
            "max_size": u.max_size_bytes,
            "content_types": list(u.content_types),
        },
        status=201,
    )


@routes.post("/v1/tasks")
async def create_task(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    raw = await read_body(request)
    data = parse_json_object(request, raw)
    reject_unknown(data, {"type", "params", "input_upload_id"})
    task_type = _task_type(req_str(data, "type", max_len=32), "type")
    params = opt_object(data, "params") or {}
    upload_id = opt_str(data, "input_upload_id", max_len=512)
    struct = struct_pb2.Struct()
    try:
        struct.update(params)
    except (ValueError, TypeError) as e:
        raise validation_error("params", "params must be a JSON object of simple values") from e

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
        return json_response(task_json(reply.task), status=201)

    return await run_idempotent(request, caller, "POST /v1/tasks", raw, produce)


def _list_filters(request: web.Request) -> dict[str, int]:
    filters: dict[str, int] = {}
    if request.query.get("type"):
        filters["type"] = _task_type(request.query["type"], "type")
    if request.query.get("status"):
        filters["status"] = _task_status(request.query["status"])
    return filters


async def _list_tasks(
    request: web.Request, caller: Caller, method: str, request_type: Any
) -> web.Response:
    """ListTasks (the caller's own) and ListAllTasks (every user's, admin only) page alike."""
    size, token = page_params(request)
    message = request_type(page_size=size, page_token=token, **_list_filters(request))
    reply = await container(request).tasks.call(method, message, caller)
    return json_response(
        {"items": [task_json(t) for t in reply.tasks], "next_page_token": reply.next_page_token}
    )


@routes.get("/v1/tasks")
async def list_tasks(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    return await _list_tasks(request, caller, "ListTasks", _pb().ListTasksRequest)


@routes.get("/v1/admin/tasks")
async def admin_list_tasks(request: web.Request) -> web.Response:
    caller = await require_admin(request)
    return await _list_tasks(request, caller, "ListAllTasks", _pb().ListAllTasksRequest)


@routes.get("/v1/tasks/{task_id}")
async def get_task(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    task_id = path_id(request, "task_id")
    reply = await container(request).tasks.call(
        "GetTask", _pb().GetTaskRequest(task_id=task_id), caller
    )
    return json_response(task_json(reply.task))


@routes.post("/v1/tasks/{task_id}/cancel")
async def cancel_task(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    task_id = path_id(request, "task_id")
    reply = await container(request).tasks.call(
        "CancelTask", _pb().CancelTaskRequest(task_id=task_id), caller, timeout=15.0
    )
    return json_response(task_json(reply.task))


def _last_event_id(request: web.Request) -> int:
    raw = request.headers.get("Last-Event-ID") or request.query.get("last_event_id") or "0"
    try:
        value = int(raw)
    except ValueError as e:
        raise validation_error("Last-Event-ID", "Last-Event-ID must be an integer", 400) from e
    if value < 0:
        raise validation_error("Last-Event-ID", "Last-Event-ID must not be negative", 400)
    return value


@routes.get("/v1/tasks/{task_id}/events")
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
            body = event_json(item)
            if body["terminal"]:
                metrics.task_outcomes.labels(body["status"]).inc()
            chunk = f"id: {item.sequence}\nevent: status\ndata: {json.dumps(body)}\n\n"
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


@routes.get("/v1/images")
async def list_images(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    size, token = page_params(request)
    filters = {}
    if request.query.get("type"):
        filters["type"] = _task_type(request.query["type"], "type")
    reply = await container(request).tasks.call(
        "ListImages", _pb().ListImagesRequest(page_size=size, page_token=token, **filters), caller
    )
    return json_response(
        {"items": [image_json(i) for i in reply.images], "next_page_token": reply.next_page_token}
    )


@routes.get("/v1/me/stats")
async def stats(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    reply = await container(request).tasks.call("GetUserStats", _pb().GetUserStatsRequest(), caller)
    pb = _pb()
    return json_response(
        {
            "total_tasks": reply.generations,
            "succeeded": reply.succeeded,
            "failed": reply.failed,
            "total_images": reply.images,
            "credits_spent": reply.credits_spent,
            "by_month": [
                {
                    "month": m.month,
                    "tasks": m.generations,
                    "images": m.images,
                    "credits": m.credits_spent,
                }
                for m in reply.months
            ],
            "by_type": [
                {"type": enum_name(t.type, pb.TaskType, "TASK_TYPE_"), "tasks": t.count}
                for t in reply.by_type
            ],
        }
    )

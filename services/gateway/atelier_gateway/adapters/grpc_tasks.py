"""Tasks over gRPC: the ``TasksGateway`` port (asyncio, for the HTTP routes).

With ``grpc_billing`` the only modules of the gateway that import generated code: the tasks
service's messages are built and read here and nowhere else.
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import AsyncIterator, Mapping

import grpc.aio
from atelier_common.grpc_client import RemoteCallError, translate

from atelier.tasks.v1 import tasks_pb2, tasks_pb2_grpc
from atelier_gateway.adapters.grpc_channel import (
    AsyncChannel,
    time_of,
)
from atelier_gateway.application import task_views as dto
from atelier_gateway.application.calls import (
    Caller,
    Notification,
    NotificationReceipt,
    Page,
    PageRequest,
)
from atelier_ports.problems import InvalidArgument

# Creating and cancelling a task settle credits with billing: a longer deadline.
SETTLING_CALL_TIMEOUT = 15.0
NOTIFICATION_TIMEOUT = 15.0

pb = tasks_pb2
# The change feed is the gateway's own call, for no end user.
FEED_CALLER = Caller(user_id=None)


# Wire enums ↔ the API's names. An unknown wire value (a proto newer than this gateway) is a
# KeyError: an internal error, never a made-up name.
TASK_TYPES: Mapping[pb.TaskType, dto.TaskType] = {
    pb.TASK_TYPE_TEXT_TO_IMAGE: "text_to_image",
    pb.TASK_TYPE_BASIC_CLEAN: "basic_clean",
    pb.TASK_TYPE_MODEL_POSE12: "model_pose12",
}
TASK_STATUSES: Mapping[pb.TaskStatus, dto.TaskStatus] = {
    pb.TASK_STATUS_PENDING: "pending",
    pb.TASK_STATUS_PROCESSING: "processing",
    pb.TASK_STATUS_SUCCEEDED: "succeeded",
    pb.TASK_STATUS_FAILED: "failed",
    pb.TASK_STATUS_CANCELLED: "cancelled",
}
WIRE_TASK_TYPES: Mapping[dto.TaskType, pb.TaskType] = {v: k for k, v in TASK_TYPES.items()}
WIRE_TASK_STATUSES: Mapping[dto.TaskStatus, pb.TaskStatus] = {
    v: k for k, v in TASK_STATUSES.items()
}
UPLOAD_METHODS: Mapping[str, dto.UploadMethod] = {"POST": "POST", "PUT": "PUT"}
VERDICTS: Mapping[pb.ModerationVerdict, dto.ModerationVerdict] = {
    pb.MODERATION_VERDICT_ALLOWED: "allowed",
    pb.MODERATION_VERDICT_REJECTED: "rejected",
}
WIRE_VERDICTS: Mapping[dto.ModerationVerdict, pb.ModerationVerdict] = {
    v: k for k, v in VERDICTS.items()
}
SUBJECTS: Mapping[pb.ModerationSubject, dto.ModerationSubject] = {
    pb.MODERATION_SUBJECT_PROMPT: "prompt",
    pb.MODERATION_SUBJECT_INPUT_IMAGE: "input_image",
    pb.MODERATION_SUBJECT_RESULT_IMAGE: "result_image",
}


def params_json_of(params: Mapping[str, object]) -> bytes:
    """Task parameters on the wire: a JSON object in UTF-8 (integers stay integers)."""
    try:
        return json.dumps(
            params, ensure_ascii=False, allow_nan=False, separators=(",", ":")
        ).encode()
    except (ValueError, TypeError) as e:  # NaN, a lone surrogate (UnicodeEncodeError)
        raise InvalidArgument(
            "params must be a JSON object of simple values", field="params"
        ) from e


def params_of(raw: bytes) -> dict[str, object]:
    params = json.loads(raw) if raw else {}
    if not isinstance(params, dict):
        raise ValueError("task params from the tasks service are not a JSON object")
    return params


def image_of(image: pb.Image) -> dto.Image:
    return dto.Image(
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
        task_type=TASK_TYPES[image.task_type],
        created_at=time_of(image, "create_time"),
    )


def task_of(task: pb.Task) -> dto.Task:
    return dto.Task(
        id=task.id,
        type=TASK_TYPES[task.type],
        status=TASK_STATUSES[task.status],
        params=params_of(task.params_json),
        input_upload_ids=list(task.input_keys),
        cost=task.cost,
        attempts=task.attempts,
        error=task.error_reason.lower() or None,  # the API's codes are snake_case
        error_message=task.error_message or None,
        images=[image_of(i) for i in task.images],
        created_at=time_of(task, "create_time"),
        updated_at=time_of(task, "update_time"),
        started_at=time_of(task, "start_time"),
        finished_at=time_of(task, "finish_time"),
        deadline_at=time_of(task, "deadline_time"),
        user_id=task.user_id,
        version=task.version,
        urls_expire_at=time_of(task, "urls_expire_time"),
    )


def event_of(event: pb.TaskEvent) -> dto.TaskEvent:
    return dto.TaskEvent(
        task_id=event.task_id,
        sequence=event.sequence,
        status=TASK_STATUSES[event.status],
        error=event.error_reason.lower() or None,
        attempts=event.attempts,
        terminal=event.terminal,
        created_at=time_of(event, "create_time"),
    )


def upload_of(u: pb.Upload) -> dto.UploadTarget:
    return dto.UploadTarget(
        key=u.key,
        method=UPLOAD_METHODS[u.method],
        url=u.url,
        fields=dict(u.fields),
        headers=dict(u.headers),
        expires_at=time_of(u, "expire_time"),
        max_size=u.max_size_bytes,
        content_types=list(u.content_types),
        credentials=credentials_of(u.credentials) if u.HasField("credentials") else None,
    )


def credentials_of(c: pb.UploadCredentials) -> dto.UploadCredentials:
    return dto.UploadCredentials(
        tmp_secret_id=c.tmp_secret_id,
        tmp_secret_key=c.tmp_secret_key,
        session_token=c.session_token,
        expires_at=time_of(c, "expire_time"),
        bucket=c.bucket,
        region=c.region,
        prefix=c.prefix,
    )


def stats_of(reply: pb.GetUserStatsResponse) -> dto.UserStats:
    return dto.UserStats(
        total_tasks=reply.generations,
        succeeded=reply.succeeded,
        failed=reply.failed,
        total_images=reply.images,
        credits_spent=reply.credits_spent,
        by_month=[
            dto.MonthStats(
                month=m.month, tasks=m.generations, images=m.images, credits=m.credits_spent
            )
            for m in reply.months
        ],
        by_type=[dto.TypeStats(type=TASK_TYPES[t.type], tasks=t.count) for t in reply.by_type],
    )


def decision_of(d: pb.ModerationDecision) -> dto.ModerationDecision:
    return dto.ModerationDecision(
        id=d.id,
        task_id=d.task_id or None,
        user_id=d.user_id,
        subject=SUBJECTS[d.subject],
        verdict=VERDICTS[d.verdict],
        labels=[dto.ModerationLabel(name=x.name, confidence=x.confidence) for x in d.labels],
        provider=d.provider,
        request_id=d.provider_request_id or None,
        created_at=time_of(d, "create_time"),
        overturned_at=time_of(d, "overturn_time"),
        overturned_by=d.overturned_by or None,
        rerun_task_id=d.rerun_task_id or None,
    )


def _wire_type(task_type: dto.TaskType | None) -> pb.TaskType | None:
    return None if task_type is None else WIRE_TASK_TYPES[task_type]


def _wire_status(status: dto.TaskStatus | None) -> pb.TaskStatus | None:
    return None if status is None else WIRE_TASK_STATUSES[status]


class GrpcTasksGateway:
    """The ``TasksGateway`` port over an asyncio channel."""

    def __init__(self, address: str, internal_token: str, timeout: float = 5.0) -> None:
        self._remote = AsyncChannel("tasks", address, internal_token, timeout)
        self._stub: tasks_pb2_grpc.TaskServiceAsyncStub | None = None

    def _tasks(self) -> tasks_pb2_grpc.TaskServiceAsyncStub:
        if self._stub is None:
            self._stub = tasks_pb2_grpc.TaskServiceStub(self._remote.channel())
        return self._stub

    async def create_upload(self, caller: Caller, upload: dto.NewUpload) -> dto.UploadTarget:
        request = pb.CreateUploadRequest(
            content_type=upload.content_type,
            size_bytes=upload.size,
            filename=upload.filename or "",
        )
        reply = await self._remote.unary(self._tasks().CreateUpload, request, caller)
        return upload_of(reply.upload)

    async def create_task(
        self, caller: Caller, task: dto.NewTask, request_id: str | None
    ) -> dto.Task:
        request = pb.CreateTaskRequest(
            type=WIRE_TASK_TYPES[task.type],
            params_json=params_json_of(task.params),
            input_keys=[task.input_upload_id] if task.input_upload_id else [],
            request_id=request_id or "",
        )
        reply = await self._remote.unary(
            self._tasks().CreateTask, request, caller, SETTLING_CALL_TIMEOUT
        )
        return task_of(reply.task)

    async def list_tasks(
        self, caller: Caller, page: PageRequest, where: dto.TaskFilter
    ) -> Page[dto.Task]:
        request = pb.ListTasksRequest(
            page_size=page.page_size,
            page_token=page.page_token,
            type=_wire_type(where.type),
            status=_wire_status(where.status),
        )
        reply = await self._remote.unary(self._tasks().ListTasks, request, caller)
        return Page([task_of(t) for t in reply.tasks], reply.next_page_token)

    async def list_all_tasks(
        self, caller: Caller, page: PageRequest, where: dto.TaskFilter
    ) -> Page[dto.Task]:
        request = pb.ListAllTasksRequest(
            page_size=page.page_size,
            page_token=page.page_token,
            type=_wire_type(where.type),
            status=_wire_status(where.status),
            user_id=where.user_id or "",
        )
        reply = await self._remote.unary(self._tasks().ListAllTasks, request, caller)
        return Page(
            [task_of(t) for t in reply.tasks], reply.next_page_token, list(reply.page_tokens)
        )

    async def get_task(self, caller: Caller, task_id: str) -> dto.Task:
        request = pb.GetTaskRequest(task_id=task_id)
        reply = await self._remote.unary(self._tasks().GetTask, request, caller)
        return task_of(reply.task)

    async def cancel_task(self, caller: Caller, task_id: str) -> dto.Task:
        request = pb.CancelTaskRequest(task_id=task_id)
        reply = await self._remote.unary(
            self._tasks().CancelTask, request, caller, SETTLING_CALL_TIMEOUT
        )
        return task_of(reply.task)

    async def watch_task(
        self, caller: Caller, task_id: str, after_sequence: int, max_seconds: float
    ) -> AsyncIterator[dto.TaskEvent]:
        request = pb.WatchTaskRequest(task_id=task_id, after_sequence=after_sequence)
        async for reply in self._remote.stream(
            self._tasks().WatchTask, request, caller, max_seconds
        ):
            yield event_of(reply.event)

    async def task_changes(self, idle_seconds: float) -> AsyncIterator[dto.TaskChange | None]:
        call = self._tasks().WatchTaskChanges(
            pb.WatchTaskChangesRequest(), metadata=self._remote.metadata(FEED_CALLER)
        )
        replies = aiter(call)
        try:
            while True:
                try:
                    # asyncio.timeout, not wait_for: Python 3.11's wait_for drops a
                    # cancellation that lands as a reply arrives (the follower then never stops).
                    async with asyncio.timeout(idle_seconds):
                        reply = await anext(replies)
                except StopAsyncIteration:
                    raise RemoteCallError("tasks", "UNAVAILABLE", "the feed ended") from None
                except TimeoutError:
                    raise RemoteCallError("tasks", "UNAVAILABLE", "the feed went silent") from None
                if reply.subscribed:
                    yield None
                elif reply.deleted:
                    yield dto.TaskChange.deleted(reply.task_id)
                elif reply.HasField("task"):
                    task = reply.task
                    yield dto.TaskChange(
                        reply.task_id, task.version, functools.partial(task_of, task)
                    )
                # else: a heartbeat
        except grpc.aio.AioRpcError as e:
            raise translate("tasks", e) from e
        finally:
            call.cancel()

    async def list_images(
        self, caller: Caller, page: PageRequest, task_type: dto.TaskType | None
    ) -> Page[dto.Image]:
        request = pb.ListImagesRequest(
            page_size=page.page_size, page_token=page.page_token, type=_wire_type(task_type)
        )
        reply = await self._remote.unary(self._tasks().ListImages, request, caller)
        return Page([image_of(i) for i in reply.images], reply.next_page_token)

    async def get_user_stats(self, caller: Caller) -> dto.UserStats:
        reply = await self._remote.unary(
            self._tasks().GetUserStats, pb.GetUserStatsRequest(), caller
        )
        return stats_of(reply)

    async def handle_provider_notification(
        self, caller: Caller, notification: Notification
    ) -> NotificationReceipt:
        request = pb.HandleProviderNotificationRequest(
            provider=notification.provider,
            headers=[pb.Header(name=k, value=v) for k, v in notification.headers],
            body=notification.body,
        )
        reply = await self._remote.unary(
            self._tasks().HandleProviderNotification, request, caller, NOTIFICATION_TIMEOUT
        )
        return NotificationReceipt(applied=reply.applied)

    async def list_moderation_decisions(
        self, caller: Caller, page: PageRequest, where: dto.DecisionFilter
    ) -> Page[dto.ModerationDecision]:
        request = pb.ListModerationDecisionsRequest(
            page_size=page.page_size,
            page_token=page.page_token,
            verdict=None if where.verdict is None else WIRE_VERDICTS[where.verdict],
            user_id=where.user_id or "",
        )
        reply = await self._remote.unary(self._tasks().ListModerationDecisions, request, caller)
        return Page(
            [decision_of(d) for d in reply.decisions],
            reply.next_page_token,
            list(reply.page_tokens),
        )

    async def overturn_moderation_decision(
        self, caller: Caller, decision_id: str
    ) -> dto.ModerationDecision:
        request = pb.OverturnModerationDecisionRequest(decision_id=decision_id)
        reply = await self._remote.unary(
            self._tasks().OverturnModerationDecision, request, caller, SETTLING_CALL_TIMEOUT
        )
        return decision_of(reply.decision)

    async def healthy(self) -> bool:
        return await self._remote.healthy()

    async def close(self) -> None:
        await self._remote.close()
        self._stub = None

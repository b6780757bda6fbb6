"""The gRPC servicer: maps protobuf messages to use-case calls and back, nothing more.

Auth, the call context and the error table live in ``atelier_common.grpc_server``; domain
errors raised here become statuses there.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import grpc
from atelier_common.context import current_call, require_user
from atelier_common.grpc_server import offload
from atelier_common.timestamps import to_timestamp

from atelier.tasks.v1 import tasks_pb2 as pb
from atelier.tasks.v1 import tasks_pb2_grpc as pb_grpc
from atelier_ports.clock import Clock
from atelier_ports.errors import InvalidNotification
from atelier_ports.problems import InvalidArgument
from atelier_tasks.application.cancel_task import CancelTaskCommand
from atelier_tasks.application.create_task import CreateTaskCommand
from atelier_tasks.application.moderation_review import ListDecisionsQuery, OverturnCommand
from atelier_tasks.application.notifications import HandleNotificationCommand
from atelier_tasks.application.ports.decisions import ModerationRecord
from atelier_tasks.application.ports.moderation import ModerationSubject, Verdict
from atelier_tasks.application.ports.storage import UploadCredentials
from atelier_tasks.application.queries import (
    GetTaskQuery,
    GetUserStatsQuery,
    ListAllTasksQuery,
    ListImagesQuery,
    ListTasksQuery,
    item_page_tokens,
)
from atelier_tasks.application.uploads import CreateUploadCommand
from atelier_tasks.application.use_cases import TaskUseCases
from atelier_tasks.application.views import ImageView, TaskView
from atelier_tasks.application.watch_changes import Marker
from atelier_tasks.application.watch_task import WatchTaskQuery
from atelier_tasks.domain.errors import InvalidParams
from atelier_tasks.domain.model import TaskEvent, TaskStatus, TaskType

SERVICE_NAME = "atelier.tasks.v1.TaskService"
RESPONSE_SLACK = 0.2  # seconds kept for the answer to reach a caller before its deadline
USERLESS_METHODS = frozenset(
    {f"/{SERVICE_NAME}/HandleProviderNotification", f"/{SERVICE_NAME}/WatchTaskChanges"}
)

# Every task type by its name in the proto (TASK_TYPE_<TYPE>): a new type needs no line here.
_TYPES: dict[TaskType, pb.TaskType] = {
    t: getattr(pb.TaskType, f"TASK_TYPE_{t.value.upper()}") for t in TaskType
}
_TYPES_BACK: dict[int, TaskType] = {int(v): k for k, v in _TYPES.items()}
_STATUSES = {
    TaskStatus.PENDING: pb.TASK_STATUS_PENDING,
    TaskStatus.PROCESSING: pb.TASK_STATUS_PROCESSING,
    TaskStatus.SUCCEEDED: pb.TASK_STATUS_SUCCEEDED,
    TaskStatus.FAILED: pb.TASK_STATUS_FAILED,
    TaskStatus.CANCELLED: pb.TASK_STATUS_CANCELLED,
}
_STATUSES_BACK: dict[int, TaskStatus] = {int(v): k for k, v in _STATUSES.items()}


_VERDICTS = {
    Verdict.ALLOWED: pb.MODERATION_VERDICT_ALLOWED,
    Verdict.REJECTED: pb.MODERATION_VERDICT_REJECTED,
}
_VERDICTS_BACK: dict[int, Verdict] = {int(v): k for k, v in _VERDICTS.items()}
_SUBJECTS = {
    s: getattr(pb.ModerationSubject, f"MODERATION_SUBJECT_{s.value.upper()}")
    for s in ModerationSubject
}


def decision_message(r: ModerationRecord) -> Any:
    return pb.ModerationDecision(
        id=r.id,
        task_id=r.task_id or "",
        user_id=r.user_id,
        subject=_SUBJECTS[r.subject],
        verdict=_VERDICTS[r.verdict],
        labels=[pb.ModerationLabel(name=x.name, confidence=x.confidence) for x in r.labels],
        provider=r.provider,
        provider_request_id=r.request_id or "",
        create_time=to_timestamp(r.created_at),
        overturn_time=to_timestamp(r.overturned_at),
        overturned_by=r.overturned_by or "",
        rerun_task_id=r.rerun_task_id or "",
    )


def _verdict_filter(value: int) -> Verdict | None:
    if value == pb.MODERATION_VERDICT_UNSPECIFIED:
        return None
    if value not in _VERDICTS_BACK:
        raise InvalidArgument("unknown verdict", field="verdict")
    return _VERDICTS_BACK[value]


class InvalidProviderNotification(InvalidArgument):
    reason = "INVALID_SIGNATURE"


def _task_type(value: int, *, required: bool) -> TaskType | None:
    if value == pb.TASK_TYPE_UNSPECIFIED:
        if required:
            raise InvalidArgument("type is required", field="type")
        return None
    if value not in _TYPES_BACK:
        raise InvalidArgument("unknown task type", field="type")
    return _TYPES_BACK[value]


def _status_filter(value: int) -> TaskStatus | None:
    if value == pb.TASK_STATUS_UNSPECIFIED:
        return None
    if value not in _STATUSES_BACK:
        raise InvalidArgument("unknown status", field="status")
    return _STATUSES_BACK[value]


def image_message(view: ImageView) -> Any:
    image = view.image
    return pb.Image(
        id=image.id,
        task_id=image.task_id,
        index=image.index,
        content_type=image.content_type,
        size_bytes=image.size,
        width=image.width,
        height=image.height,
        sha256=image.sha256,
        url=view.url,
        thumbnail_url=view.thumbnail_url,
        create_time=to_timestamp(image.created_at),
        task_type=_TYPES[image.task_type],
    )


def params_of(raw: bytes) -> dict[str, Any]:
    """``CreateTaskRequest.params_json``: a JSON object in UTF-8; empty means no parameters."""
    if not raw:
        return {}
    try:
        text = raw.decode("utf-8")
        params = json.loads(text, parse_constant=_not_json)
        if "\\u" in text:  # an escaped lone surrogate is no text a database can store
            json.dumps(params, ensure_ascii=False).encode("utf-8")
    except (ValueError, RecursionError):  # UnicodeError and JSONDecodeError are ValueErrors
        raise InvalidParams("params must be a JSON object", field="params") from None
    if not isinstance(params, dict):
        raise InvalidParams("params must be a JSON object", field="params")
    return params


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")


def params_json(params: Any) -> bytes:
    return json.dumps(params, separators=(",", ":")).encode()


def task_message(view: TaskView) -> Any:
    task = view.task
    return pb.Task(
        id=task.id,
        type=_TYPES[task.type],
        status=_STATUSES[task.status],
        params_json=params_json(task.params),
        input_keys=list(task.input_keys),
        cost=task.cost,
        provider=task.provider,
        attempts=task.attempts,
        error_reason=task.error_reason or "",
        error_message=task.error_message or "",
        images=[image_message(i) for i in view.images],
        create_time=to_timestamp(task.created_at),
        update_time=to_timestamp(task.updated_at),
        start_time=to_timestamp(task.started_at),
        finish_time=to_timestamp(task.finished_at),
        deadline_time=to_timestamp(task.deadline_at),
        request_id=task.request_id or "",
        user_id=task.user_id,
        version=task.version,
        urls_expire_time=to_timestamp(view.urls_expire_at),
    )


def event_message(event: TaskEvent) -> Any:
    return pb.TaskEvent(
        task_id=event.task_id,
        sequence=event.sequence,
        status=_STATUSES[event.status],
        error_reason=event.error_reason or "",
        attempts=event.attempts,
        create_time=to_timestamp(event.at),
        terminal=event.terminal,
    )


class TaskServicer(pb_grpc.TaskServiceServicer):
    def __init__(self, use_cases: TaskUseCases, clock: Clock) -> None:
        self.use_cases = use_cases
        self.clock = clock

    def CreateTask(self, request: Any, context: grpc.ServicerContext) -> Any:
        task_type = _task_type(request.type, required=True)
        assert task_type is not None
        params = params_of(request.params_json)
        view = self.use_cases.create_task(
            CreateTaskCommand(
                user_id=require_user(),
                type=task_type,
                params=params,
                input_keys=list(request.input_keys),
                request_id=request.request_id or None,
                respond_by=self._respond_by(context),
            )
        )
        return pb.CreateTaskResponse(task=task_message(view))

    def _respond_by(self, context: grpc.ServicerContext) -> datetime | None:
        """The caller's deadline on the application's clock, less the trip back."""
        remaining = context.time_remaining()
        if remaining is None or remaining > 10**6:  # no deadline (gRPC reports a huge number)
            return None
        return self.clock.now() + timedelta(seconds=max(remaining - RESPONSE_SLACK, 0.0))

    def GetTask(self, request: Any, context: grpc.ServicerContext) -> Any:
        return pb.GetTaskResponse(
            task=task_message(
                self.use_cases.get_task(GetTaskQuery(require_user(), request.task_id))
            )
        )

    def ListTasks(self, request: Any, context: grpc.ServicerContext) -> Any:
        status = _status_filter(request.status)
        views, token = self.use_cases.list_tasks(
            ListTasksQuery(
                user_id=require_user(),
                page_size=request.page_size,
                page_token=request.page_token,
                task_type=_task_type(request.type, required=False),
                status=status,
            )
        )
        return pb.ListTasksResponse(tasks=[task_message(v) for v in views], next_page_token=token)

    def ListAllTasks(self, request: Any, context: grpc.ServicerContext) -> Any:
        require_user()  # an admin is still a signed-in end user
        views, token = self.use_cases.list_all_tasks(
            ListAllTasksQuery(
                caller_is_admin=current_call().is_admin,
                page_size=request.page_size,
                page_token=request.page_token,
                task_type=_task_type(request.type, required=False),
                status=_status_filter(request.status),
                user_id=request.user_id or None,
            )
        )
        return pb.ListAllTasksResponse(
            tasks=[task_message(v) for v in views],
            next_page_token=token,
            page_tokens=item_page_tokens(views),
        )

    def CancelTask(self, request: Any, context: grpc.ServicerContext) -> Any:
        view = self.use_cases.cancel_task(CancelTaskCommand(require_user(), request.task_id))
        return pb.CancelTaskResponse(task=task_message(view))

    async def WatchTask(self, request: Any, context: grpc.ServicerContext) -> AsyncIterator[Any]:
        # On the event loop: an open stream holds no thread (only its database reads borrow one).
        events = self.use_cases.watch.follow(
            WatchTaskQuery(require_user(), request.task_id, request.after_sequence),
            offload=offload,
        )
        async for event in events:
            yield pb.WatchTaskResponse(event=event_message(event))

    async def WatchTaskChanges(
        self, request: Any, context: grpc.ServicerContext
    ) -> AsyncIterator[Any]:
        # One per follower (a gateway process), open for as long as it runs; on the loop.
        async for change in self.use_cases.watch_changes.follow(offload=offload):
            if change is Marker.SUBSCRIBED:
                yield pb.WatchTaskChangesResponse(subscribed=True)
            elif change is Marker.QUIET:
                yield pb.WatchTaskChangesResponse()  # a heartbeat
            elif change.view is None:
                yield pb.WatchTaskChangesResponse(task_id=change.task_id, deleted=True)
            else:
                yield pb.WatchTaskChangesResponse(
                    task_id=change.task_id, task=task_message(change.view)
                )

    def ListImages(self, request: Any, context: grpc.ServicerContext) -> Any:
        views, token = self.use_cases.list_images(
            ListImagesQuery(
                user_id=require_user(),
                page_size=request.page_size,
                page_token=request.page_token,
                task_type=_task_type(request.type, required=False),
            )
        )
        return pb.ListImagesResponse(
            images=[image_message(v) for v in views], next_page_token=token
        )

    def GetUserStats(self, request: Any, context: grpc.ServicerContext) -> Any:
        stats = self.use_cases.user_stats(GetUserStatsQuery(require_user()))
        return pb.GetUserStatsResponse(
            generations=stats.generations,
            succeeded=stats.succeeded,
            failed=stats.failed,
            images=stats.images,
            credits_spent=stats.credits_spent,
            months=[
                pb.MonthStats(
                    month=m.month,
                    generations=m.generations,
                    images=m.images,
                    credits_spent=m.credits_spent,
                )
                for m in stats.months
            ],
            by_type=[pb.TypeCount(type=_TYPES[t], count=n) for t, n in stats.by_type.items()],
        )

    def CreateUpload(self, request: Any, context: grpc.ServicerContext) -> Any:
        target, max_size, content_types = self.use_cases.create_upload(
            CreateUploadCommand(
                user_id=require_user(),
                content_type=request.content_type,
                size=request.size_bytes,
                filename=request.filename,
            )
        )
        return pb.CreateUploadResponse(
            upload=pb.Upload(
                key=target.key,
                method=target.method,
                url=target.url,
                fields=dict(target.fields),
                headers=dict(target.headers),
                expire_time=to_timestamp(target.expires_at),
                max_size_bytes=max_size,
                content_types=list(content_types),
                credentials=_credentials(target.credentials),
            )
        )

    def HandleProviderNotification(self, request: Any, context: grpc.ServicerContext) -> Any:
        headers = {h.name.lower(): h.value for h in request.headers}
        try:
            applied, task_id = self.use_cases.handle_notification(
                HandleNotificationCommand(request.provider, headers, request.body)
            )
        except InvalidNotification as exc:
            raise InvalidProviderNotification(str(exc) or "invalid notification") from exc
        return pb.HandleProviderNotificationResponse(applied=applied, task_id=task_id)

    def ListModerationDecisions(self, request: Any, context: grpc.ServicerContext) -> Any:
        require_user()
        page = self.use_cases.list_decisions(
            ListDecisionsQuery(
                caller_is_admin=current_call().is_admin,
                page_size=request.page_size,
                page_token=request.page_token,
                verdict=_verdict_filter(request.verdict),
                user_id=request.user_id or None,
            )
        )
        return pb.ListModerationDecisionsResponse(
            decisions=[decision_message(r) for r in page.decisions],
            next_page_token=page.next_page_token,
            page_tokens=page.item_tokens,
        )

    def OverturnModerationDecision(self, request: Any, context: grpc.ServicerContext) -> Any:
        admin_id = require_user()
        record = self.use_cases.overturn_decision(
            OverturnCommand(
                caller_is_admin=current_call().is_admin,
                admin_id=admin_id,
                decision_id=request.decision_id,
            )
        )
        return pb.OverturnModerationDecisionResponse(decision=decision_message(record))


def _credentials(c: UploadCredentials | None) -> Any:
    if c is None:
        return None
    return pb.UploadCredentials(
        tmp_secret_id=c.secret_id,
        tmp_secret_key=c.secret_key,
        session_token=c.session_token,
        expire_time=to_timestamp(c.expires_at),
        bucket=c.bucket,
        region=c.region,
        prefix=c.prefix,
    )

"""CreateTask: the create saga's first steps, answered within the caller's deadline.

1. persist the task (``pending``, hold ``placing``), its first event and its place in the
   user's daily count — one transaction (a repeated request id inserts nothing and is answered
   with the stored task; the count is given back by whatever later deletes or abandons it);
2. place the hold in billing with the task id as idempotency key, within the time the caller
   has left (its gRPC deadline, at most ``create_budget``);
3. mark the hold ``held`` — only now can the worker dispatch it, and only this call may do it.

Steps 2 and 3 are the saga's (:meth:`TaskSaga.place_hold`). CreateTask answers UNAVAILABLE only
after the task can no longer run: if billing cannot be reached, or its answer does not come in
time to commit before the caller's deadline, the task is *abandoned* — ``failed`` with
``BILLING_UNAVAILABLE``, its request id freed so a retry creates a new task — and the worker
releases whatever hold billing may have placed (idempotent by the task id; "no such hold" is
final only once no placement can still land). A CreateTask call that never finished (its
process died) leaves a ``placing`` task that the worker's sweep abandons the same way
(``CREATE_INTERRUPTED``) — it never places holds itself. Every step is version-checked, so
whoever commits first (the create, a retry with the same request id, the sweep) decides, and the
others answer by what was committed. Insufficient credits (or any other definite "no" from
billing) delete the task: it was never created, and no provider is ever called.

Before step 1, the user's words (prompt, negative prompt) go through content moderation
(``moderation.py``): refused → CONTENT_REJECTED with only the decision recorded; the provider
down → UNAVAILABLE with nothing done. An allowed decision is stored in step 1's transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from atelier_ports.clock import Clock
from atelier_ports.errors import ProviderRejected, ProviderUnavailable
from atelier_ports.ids import IdGenerator
from atelier_tasks.application.config import TasksConfig
from atelier_tasks.application.moderation import ContentChecks
from atelier_tasks.application.ports import DailyQuota, TaskEventHub, TasksUnitOfWorkFactory
from atelier_tasks.application.ports.decisions import ModerationRecord
from atelier_tasks.application.ports.storage import ObjectStorage
from atelier_tasks.application.saga import TaskSaga
from atelier_tasks.application.views import TaskView, TaskViews
from atelier_tasks.domain.errors import (
    ContentRejected,
    InvalidParams,
    ModerationUnavailable,
    RequestIdConflict,
)
from atelier_tasks.domain.model import Task, TaskType
from atelier_tasks.domain.task_types import user_text, validate_params

log = logging.getLogger("atelier.tasks")

LOCAL_PROVIDER = "local"  # the only provider that honours params.sandbox_outcome


@dataclass(frozen=True, slots=True)
class CreateTaskCommand:
    user_id: str
    type: TaskType
    params: Mapping[str, Any]
    input_keys: Sequence[str] = ()
    request_id: str | None = None
    # When the caller stops waiting (its gRPC deadline); the saga answers before that.
    respond_by: datetime | None = None


class CreateTask:
    def __init__(
        self,
        *,
        uow: TasksUnitOfWorkFactory,
        storage: ObjectStorage,
        hub: TaskEventHub,
        saga: TaskSaga,
        views: TaskViews,
        clock: Clock,
        ids: IdGenerator,
        config: TasksConfig,
        checks: ContentChecks | None = None,
    ) -> None:
        self.checks = checks
        self.uow = uow
        self.storage = storage
        self.hub = hub
        self.saga = saga
        self.views = views
        self.clock = clock
        self.ids = ids
        self.config = config

    def __call__(self, command: CreateTaskCommand) -> TaskView:
        config = self.config
        respond_by = self.clock.now() + config.create_budget
        if command.respond_by is not None:
            respond_by = min(respond_by, command.respond_by)
        validated = validate_params(
            command.type,
            command.params,
            command.input_keys,
            command.user_id,
            sandbox=config.routes[command.type] == LOCAL_PROVIDER,
        )
        params, keys = validated.params, validated.input_keys
        request_id = command.request_id or None
        for key in keys:
            upload = self.storage.head(key)
            if upload is None or upload.content_type not in config.upload_content_types:
                # A retry of a request that was created may find its upload gone: answer it.
                existing = self._find(command.user_id, request_id)
                if existing is not None:
                    return self._replay(existing, command.type, params, keys, respond_by)
                if upload is None:
                    raise InvalidParams(f"no uploaded image under {key!r}", field="input_keys")
                raise InvalidParams(f"{key!r} is not a supported image", field="input_keys")
            if upload.size > config.upload_max_bytes:  # direct uploads are checked again here
                raise InvalidParams(f"{key!r} is larger than the upload limit", field="input_keys")
        task_id = self.ids.new_id("task")
        try:
            decision = self._moderate(command.user_id, task_id, command.type, params)
        except (ContentRejected, ModerationUnavailable):
            # A retry of a request that was created (and allowed) is answered with its task.
            existing = self._find(command.user_id, request_id)
            if existing is not None:
                return self._replay(existing, command.type, params, keys, respond_by)
            raise
        now = self.clock.now()
        task = Task.create(
            task_id=task_id,
            user_id=command.user_id,
            task_type=command.type,
            params=params,
            input_keys=keys,
            cost=config.costs[command.type],
            provider=config.routes[command.type],
            now=now,
            timeout=config.timeout,
            request_id=request_id,
        )
        # One transaction: the task (or the one already created under this request id), its
        # first event and its place in the day's count.
        with self.uow() as uow:
            stored = uow.tasks.add(task, DailyQuota(config.daily_limit))
            if decision is not None and stored.id == task.id:
                uow.moderation.add([decision])  # the allowed prompt, with its task
            uow.commit()
        if stored.id != task.id:  # a concurrent create with the same request_id won
            return self._replay(stored, command.type, params, keys, respond_by)
        self.hub.publish(task.id)
        return TaskView(self.saga.place_hold(stored, respond_by))

    def _moderate(
        self, user_id: str, task_id: str, task_type: TaskType, params: Mapping[str, Any]
    ) -> ModerationRecord | None:
        """The user's words through content moderation, before anything is stored or held.
        Refused: the decision is recorded (without a task) and ContentRejected raised. The
        provider cannot answer: ModerationUnavailable, nothing done (never fails open)."""
        checks = self.checks
        text = user_text(task_type, params) if checks is not None and checks.enabled else None
        if checks is None or text is None:
            return None
        try:
            decision = checks.check_text(user_id, task_id, text)
        except (ProviderUnavailable, ProviderRejected) as exc:
            log.warning("prompt not checked: %s", exc)
            raise ModerationUnavailable(
                "content moderation is unavailable; nothing was done — retry later"
            ) from exc
        if decision.rejected:
            checks.record([replace(decision, task_id=None)])
            raise ContentRejected(
                "the prompt was refused by content moderation; nothing was charged"
            )
        return decision

    def _find(self, user_id: str, request_id: str | None) -> Task | None:
        if not request_id:
            return None
        with self.uow(read_only=True) as uow:
            return uow.tasks.find_by_request(user_id, request_id)

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
        placed = self.saga.place_hold(task, respond_by)
        with self.uow(read_only=True) as uow:
            return self.views.task(uow, placed)

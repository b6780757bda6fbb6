"""The tasks use cases, built once with their dependencies (by the container, or by tests on
fakes); entrypoints hold this and call the handlers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from atelier_ports.clock import Clock
from atelier_ports.ids import IdGenerator
from atelier_tasks.application.cancel_task import CancelTask
from atelier_tasks.application.config import TasksConfig
from atelier_tasks.application.create_task import CreateTask
from atelier_tasks.application.moderation_review import ListDecisions, OverturnDecision
from atelier_tasks.application.notifications import HandleNotification
from atelier_tasks.application.ports import TaskEventHub, TasksUnitOfWorkFactory
from atelier_tasks.application.ports.generation import GenerationProvider
from atelier_tasks.application.ports.storage import ObjectStorage
from atelier_tasks.application.queries import (
    GetTask,
    GetUserStats,
    ListAllTasks,
    ListImages,
    ListTasks,
)
from atelier_tasks.application.saga import TaskSaga
from atelier_tasks.application.uploads import CreateUpload
from atelier_tasks.application.views import TaskViews
from atelier_tasks.application.watch_changes import WatchTaskChanges
from atelier_tasks.application.watch_task import WatchTask


@dataclass(frozen=True, slots=True)
class TaskUseCases:
    create_task: CreateTask
    get_task: GetTask
    list_tasks: ListTasks
    list_all_tasks: ListAllTasks
    list_images: ListImages
    user_stats: GetUserStats
    cancel_task: CancelTask
    watch: WatchTask
    watch_changes: WatchTaskChanges
    create_upload: CreateUpload
    handle_notification: HandleNotification
    list_decisions: ListDecisions
    overturn_decision: OverturnDecision


def build_use_cases(
    *,
    saga: TaskSaga,
    uow: TasksUnitOfWorkFactory,
    providers: Mapping[str, GenerationProvider],
    storage: ObjectStorage,
    hub: TaskEventHub,
    clock: Clock,
    ids: IdGenerator,
    config: TasksConfig,
) -> TaskUseCases:
    views = TaskViews(storage=storage, config=config, clock=clock)
    return TaskUseCases(
        create_task=CreateTask(
            uow=uow,
            storage=storage,
            hub=hub,
            saga=saga,
            views=views,
            clock=clock,
            ids=ids,
            config=config,
            checks=saga.checks,
        ),
        get_task=GetTask(uow=uow, views=views),
        list_tasks=ListTasks(uow=uow, views=views),
        list_all_tasks=ListAllTasks(uow=uow, views=views),
        list_images=ListImages(uow=uow, views=views),
        user_stats=GetUserStats(uow=uow),
        cancel_task=CancelTask(uow=uow, saga=saga, views=views),
        watch=WatchTask(uow=uow, hub=hub, config=config),
        watch_changes=WatchTaskChanges(uow=uow, hub=hub, views=views, config=config),
        create_upload=CreateUpload(storage=storage, ids=ids, config=config),
        handle_notification=HandleNotification(providers=providers, uow=uow, saga=saga),
        list_decisions=ListDecisions(uow=uow, config=config),
        overturn_decision=OverturnDecision(uow=uow, hub=hub, clock=clock, ids=ids, config=config),
    )

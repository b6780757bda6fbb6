"""Reads: one task, listings (the user's, every user's for admins), images, usage statistics."""

from __future__ import annotations

from dataclasses import dataclass

from atelier_tasks.application.ports import Page, TasksUnitOfWork, TasksUnitOfWorkFactory
from atelier_tasks.application.views import (
    ALL_TASKS_PAGE,
    IMAGES_PAGE,
    TASKS_PAGE,
    ImageView,
    TaskView,
    TaskViews,
    encode_cursor,
)
from atelier_tasks.domain.errors import AdminOnly, TaskNotFound
from atelier_tasks.domain.model import Task, TaskStatus, TaskType


def own_task(uow: TasksUnitOfWork, user_id: str, task_id: str) -> Task:
    """The caller's task, or TaskNotFound (someone else's is not found either)."""
    task = uow.tasks.get(task_id, user_id) if task_id else None
    if task is None:
        raise TaskNotFound(f"task {task_id!r} not found")
    return task


@dataclass(frozen=True, slots=True)
class GetTaskQuery:
    user_id: str
    task_id: str


@dataclass(frozen=True, slots=True)
class ListTasksQuery:
    user_id: str
    page_size: int
    page_token: str
    task_type: TaskType | None = None
    status: TaskStatus | None = None


@dataclass(frozen=True, slots=True)
class ListAllTasksQuery:
    caller_is_admin: bool
    page_size: int
    page_token: str
    task_type: TaskType | None = None
    status: TaskStatus | None = None
    user_id: str | None = None  # only this user's tasks


@dataclass(frozen=True, slots=True)
class ListImagesQuery:
    user_id: str
    page_size: int
    page_token: str
    task_type: TaskType | None = None


@dataclass(frozen=True, slots=True)
class GetUserStatsQuery:
    user_id: str


@dataclass(frozen=True, slots=True)
class MonthStats:
    month: str
    generations: int = 0
    images: int = 0
    credits_spent: int = 0


@dataclass(frozen=True, slots=True)
class UserStats:
    generations: int
    succeeded: int
    failed: int
    images: int
    credits_spent: int
    months: list[MonthStats]
    by_type: dict[TaskType, int]


class GetTask:
    def __init__(self, *, uow: TasksUnitOfWorkFactory, views: TaskViews) -> None:
        self.uow = uow
        self.views = views

    def __call__(self, query: GetTaskQuery) -> TaskView:
        found = None
        if query.task_id:
            with self.uow(read_only=True) as uow:  # one query: the task and its images
                found = uow.tasks.get_with_images(query.task_id, query.user_id)
        if found is None:
            raise TaskNotFound(f"task {query.task_id!r} not found")
        return self.views.view(*found)


class ListTasks:
    """The caller's tasks, newest first."""

    def __init__(self, *, uow: TasksUnitOfWorkFactory, views: TaskViews) -> None:
        self.uow = uow
        self.views = views

    def __call__(self, query: ListTasksQuery) -> tuple[list[TaskView], str]:
        return _listing(
            self,
            TASKS_PAGE,
            query.user_id,
            query.page_size,
            query.page_token,
            query.task_type,
            query.status,
        )


class ListAllTasks:
    """Every user's tasks, or one user's (the admin console)."""

    def __init__(self, *, uow: TasksUnitOfWorkFactory, views: TaskViews) -> None:
        self.uow = uow
        self.views = views

    def __call__(self, query: ListAllTasksQuery) -> tuple[list[TaskView], str]:
        if not query.caller_is_admin:
            raise AdminOnly("listing every user's tasks needs the admin role")
        return _listing(
            self,
            ALL_TASKS_PAGE,
            query.user_id,
            query.page_size,
            query.page_token,
            query.task_type,
            query.status,
        )


def _listing(
    use_case: ListTasks | ListAllTasks,
    kind: str,
    user_id: str | None,
    page_size: int,
    page_token: str,
    task_type: TaskType | None,
    status: TaskStatus | None,
) -> tuple[list[TaskView], str]:
    page = use_case.views.page(page_size, page_token, kind)
    with use_case.uow(read_only=True) as uow:
        tasks = uow.tasks.list_tasks(user_id, Page(page.size + 1, page.after), task_type, status)
        more = len(tasks) > page.size
        tasks = tasks[: page.size]
        views = use_case.views.tasks(uow, tasks)
    token = encode_cursor(kind, tasks[-1].created_at, tasks[-1].id) if more and tasks else ""
    return views, token


class ListImages:
    def __init__(self, *, uow: TasksUnitOfWorkFactory, views: TaskViews) -> None:
        self.uow = uow
        self.views = views

    def __call__(self, query: ListImagesQuery) -> tuple[list[ImageView], str]:
        page = self.views.page(query.page_size, query.page_token, IMAGES_PAGE)
        with self.uow(read_only=True) as uow:
            images = uow.tasks.list_images(
                query.user_id, Page(page.size + 1, page.after), query.task_type
            )
        more = len(images) > page.size
        images = images[: page.size]
        last = images[-1] if more and images else None
        token = encode_cursor(IMAGES_PAGE, last.created_at, last.id) if last else ""
        return [self.views.image(i) for i in images], token


class GetUserStats:
    def __init__(self, *, uow: TasksUnitOfWorkFactory) -> None:
        self.uow = uow

    def __call__(self, query: GetUserStatsQuery) -> UserStats:
        months: dict[str, MonthStats] = {}
        by_type: dict[TaskType, int] = {}
        generations = succeeded = failed = images = spent = 0
        with self.uow(read_only=True) as uow:
            summaries = uow.tasks.summaries(query.user_id)
        for s in summaries:
            generations += 1
            by_type[s.type] = by_type.get(s.type, 0) + 1
            month = s.created_at.strftime("%Y-%m")
            m = months.get(month, MonthStats(month))
            charged = s.cost if s.status is TaskStatus.SUCCEEDED else 0
            months[month] = MonthStats(
                month, m.generations + 1, m.images + s.images, m.credits_spent + charged
            )
            succeeded += s.status is TaskStatus.SUCCEEDED
            failed += s.status is TaskStatus.FAILED
            images += s.images
            spent += charged
        return UserStats(
            generations=generations,
            succeeded=succeeded,
            failed=failed,
            images=images,
            credits_spent=spent,
            months=[months[k] for k in sorted(months, reverse=True)],
            by_type=by_type,
        )


def item_page_tokens(views: list[TaskView]) -> list[str]:
    """For each task of a listing, the token that continues the listing right after it."""
    return [encode_cursor(ALL_TASKS_PAGE, v.task.created_at, v.task.id) for v in views]

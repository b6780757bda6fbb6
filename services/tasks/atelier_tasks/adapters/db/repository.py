"""The task repository on SQLAlchemy Core: SQLite (embedded default) and PostgreSQL.

A unit of work is one transaction; every update in it is guarded by the task's ``version``
(optimistic concurrency). Work is leased with ``SELECT … FOR UPDATE SKIP LOCKED`` on PostgreSQL,
so several workers never claim the same task; on SQLite every transaction is ``BEGIN IMMEDIATE``
(one writer at a time), which gives the same guarantee. On PostgreSQL each change also sends
``NOTIFY atelier_task_events`` with the task id, delivered at commit, so watchers on every replica
wake up.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from atelier_common.db import SqlUnitOfWork
from atelier_common.timestamps import as_utc, as_utc_or_none
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import IntegrityError

from atelier_tasks.adapters.db.tables import task_events, task_images, tasks
from atelier_tasks.application.ports import (
    ClaimKind,
    ConcurrentUpdate,
    DailyQuota,
    Page,
    TaskRepository,
    TaskSummary,
)
from atelier_tasks.domain.errors import DailyLimitReached
from atelier_tasks.domain.model import (
    ABANDONED_REASONS,
    HoldState,
    ResultImage,
    Task,
    TaskEvent,
    TaskStatus,
    TaskType,
)

NOTIFY_CHANNEL = "atelier_task_events"
_OPEN = (TaskStatus.PENDING.value, TaskStatus.PROCESSING.value)
_DONE = (TaskStatus.SUCCEEDED.value, TaskStatus.FAILED.value, TaskStatus.CANCELLED.value)


class SqlTaskRepository:
    """The tasks tables, inside the transaction of a :class:`SqlTasksUnitOfWork`."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._pg = conn.dialect.name == "postgresql"

    # --- writes --------------------------------------------------------------------------------

    def add(self, task: Task, quota: DailyQuota | None = None) -> Task:
        conn = self._conn
        if quota is not None:
            self._check_quota(conn, task.user_id, quota)
        try:
            with conn.begin_nested():  # a duplicate request id leaves the transaction usable
                conn.execute(tasks.insert().values(**self._row(task), version=1))
                self._insert_events(conn, task)
        except IntegrityError:
            if task.request_id:
                existing = self.find_by_request(task.user_id, task.request_id)
                if existing is not None:
                    return existing
            raise
        self._notify(conn, task.id)
        task.version = 1
        task.new_events.clear()
        return task

    def _check_quota(self, conn: Connection, user_id: str, quota: DailyQuota) -> None:
        if self._pg:  # one creator per user at a time; SQLite's BEGIN IMMEDIATE already is
            conn.execute(sa.select(sa.func.pg_advisory_xact_lock(sa.func.hashtext(user_id))))
        t = tasks.c
        not_abandoned = sa.or_(
            t.status != TaskStatus.FAILED.value,
            t.error_reason.is_(None),
            t.error_reason.not_in([r.value for r in ABANDONED_REASONS]),
        )
        count = conn.execute(
            sa.select(sa.func.count())
            .select_from(tasks)
            .where(t.user_id == user_id, t.created_at >= quota.since, not_abandoned)
        ).scalar_one()
        if count >= quota.limit:
            raise DailyLimitReached(
                f"daily limit of {quota.limit} generations reached",
                metadata={"limit": str(quota.limit)},
            )

    def save(self, task: Task, images: Sequence[ResultImage] = ()) -> None:
        conn = self._conn
        result = conn.execute(
            tasks.update()
            .where(tasks.c.id == task.id, tasks.c.version == task.version)
            .values(**self._row(task), version=task.version + 1)
        )
        if result.rowcount != 1:
            raise ConcurrentUpdate(task.id)
        if task.new_events:
            self._insert_events(conn, task)
            self._notify(conn, task.id)  # watchers care about events only
        if images:
            conn.execute(task_images.insert(), [self._image_row(i) for i in images])
        task.version += 1
        task.new_events.clear()

    def delete(self, task_id: str) -> None:
        conn = self._conn
        conn.execute(task_images.delete().where(task_images.c.task_id == task_id))
        conn.execute(task_events.delete().where(task_events.c.task_id == task_id))
        conn.execute(tasks.delete().where(tasks.c.id == task_id))
        self._notify(conn, task_id)

    def claim(
        self,
        kind: ClaimKind,
        now: datetime,
        owner: str,
        lease_until: datetime,
        limit: int,
        start: Callable[[Task], None] | None = None,
    ) -> list[Task]:
        t = tasks.c
        free = sa.or_(t.lease_expires_at.is_(None), t.lease_expires_at < now)
        if kind is ClaimKind.DISPATCH:
            due = sa.and_(
                t.hold_state == HoldState.HELD.value,
                t.deadline_at > now,
                sa.or_(
                    sa.and_(t.status == TaskStatus.PENDING.value, t.next_attempt_at <= now),
                    sa.and_(
                        t.status == TaskStatus.PROCESSING.value,
                        t.provider_job_id.is_(None),
                        sa.or_(t.next_attempt_at.is_(None), t.next_attempt_at <= now),
                    ),
                ),
            )
            order: Any = t.created_at
        else:
            due = sa.and_(
                t.status == TaskStatus.PROCESSING.value,
                t.provider_job_id.is_not(None),
                t.next_poll_at <= now,
                t.deadline_at > now,
            )
            order = t.next_poll_at
        query = (
            sa.select(tasks)
            .where(due, free)
            .order_by(order, t.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        claimed: list[Task] = []
        conn = self._conn
        for row in conn.execute(query).all():
            task = self._task(row._mapping)
            task.lease_owner, task.lease_expires_at = owner, lease_until
            if start is not None:
                start(task)
            conn.execute(
                tasks.update()
                .where(t.id == task.id, t.version == task.version)
                .values(**self._row(task), version=task.version + 1)
            )
            if task.new_events:
                self._insert_events(conn, task)
                self._notify(conn, task.id)
            claimed.append(task)
        for task in claimed:
            task.version += 1
            task.new_events.clear()
        return claimed

    # --- reads ---------------------------------------------------------------------------------

    def get(self, task_id: str, user_id: str | None = None) -> Task | None:
        query = sa.select(tasks).where(tasks.c.id == task_id)
        if user_id is not None:
            query = query.where(tasks.c.user_id == user_id)
        conn = self._conn
        row = conn.execute(query).first()
        return self._task(row._mapping) if row else None

    def find_by_request(self, user_id: str, request_id: str) -> Task | None:
        query = sa.select(tasks).where(tasks.c.user_id == user_id, tasks.c.request_id == request_id)
        conn = self._conn
        row = conn.execute(query).first()
        return self._task(row._mapping) if row else None

    def find_by_provider_job(self, provider: str, job_id: str) -> Task | None:
        query = sa.select(tasks).where(
            tasks.c.provider == provider, tasks.c.provider_job_id == job_id
        )
        conn = self._conn
        row = conn.execute(query).first()
        return self._task(row._mapping) if row else None

    def list_tasks(
        self,
        user_id: str | None,
        page: Page,
        task_type: TaskType | None,
        status: TaskStatus | None,
    ) -> list[Task]:
        t = tasks.c
        query = sa.select(tasks)
        if user_id is not None:
            query = query.where(t.user_id == user_id)
        if task_type is not None:
            query = query.where(t.type == task_type.value)
        if status is not None:
            query = query.where(t.status == status.value)
        if page.after is not None:
            at, last_id = page.after
            query = query.where(
                sa.or_(t.created_at < at, sa.and_(t.created_at == at, t.id < last_id))
            )
        query = query.order_by(t.created_at.desc(), t.id.desc()).limit(page.size)
        conn = self._conn
        return [self._task(r._mapping) for r in conn.execute(query)]

    def images_of(self, task_ids: Sequence[str]) -> dict[str, list[ResultImage]]:
        out: dict[str, list[ResultImage]] = {}
        if not task_ids:
            return out
        query = (
            sa.select(task_images)
            .where(task_images.c.task_id.in_(list(task_ids)))
            .order_by(task_images.c.task_id, task_images.c.idx)
        )
        conn = self._conn
        for row in conn.execute(query):
            image = self._image(row._mapping)
            out.setdefault(image.task_id, []).append(image)
        return out

    def list_images(
        self, user_id: str, page: Page, task_type: TaskType | None
    ) -> list[ResultImage]:
        i = task_images.c
        query = sa.select(task_images).where(i.user_id == user_id)
        if task_type is not None:
            query = query.where(i.task_type == task_type.value)
        if page.after is not None:
            at, last_id = page.after
            query = query.where(
                sa.or_(i.created_at < at, sa.and_(i.created_at == at, i.id < last_id))
            )
        query = query.order_by(i.created_at.desc(), i.id.desc()).limit(page.size)
        conn = self._conn
        return [self._image(r._mapping) for r in conn.execute(query)]

    def events_after(self, task_id: str, sequence: int) -> list[TaskEvent]:
        e = task_events.c
        query = (
            sa.select(task_events)
            .where(e.task_id == task_id, e.sequence > sequence)
            .order_by(e.sequence)
        )
        conn = self._conn
        return [
            TaskEvent(
                task_id=r.task_id,
                sequence=r.sequence,
                status=TaskStatus(r.status),
                attempts=r.attempts,
                at=as_utc(r.created_at),
                error_reason=r.error_reason,
            )
            for r in conn.execute(query)
        ]

    def summaries(self, user_id: str) -> list[TaskSummary]:
        counts = (
            sa.select(task_images.c.task_id, sa.func.count().label("n"))
            .where(task_images.c.user_id == user_id)
            .group_by(task_images.c.task_id)
            .subquery()
        )
        query = (
            sa.select(
                tasks.c.created_at,
                tasks.c.type,
                tasks.c.status,
                tasks.c.cost,
                sa.func.coalesce(counts.c.n, 0),
            )
            .select_from(tasks.outerjoin(counts, counts.c.task_id == tasks.c.id))
            .where(tasks.c.user_id == user_id)
        )
        conn = self._conn
        return [
            TaskSummary(as_utc(r[0]), TaskType(r[1]), TaskStatus(r[2]), int(r[3]), int(r[4]))
            for r in conn.execute(query)
        ]

    def timed_out(self, now: datetime, limit: int) -> list[str]:
        t = tasks.c
        query = (
            sa.select(t.id)
            .where(
                t.status.in_(_OPEN), t.deadline_at < now, t.hold_state != HoldState.PLACING.value
            )
            .order_by(t.deadline_at)
            .limit(limit)
        )
        conn = self._conn
        return list(conn.execute(query).scalars())

    def unsettled(self, now: datetime, limit: int) -> list[str]:
        t = tasks.c
        due = sa.or_(
            t.hold_state == HoldState.HELD.value,
            sa.and_(
                t.hold_state == HoldState.PLACING.value,
                sa.or_(t.next_attempt_at.is_(None), t.next_attempt_at <= now),
            ),
        )
        query = sa.select(t.id).where(t.status.in_(_DONE), due).order_by(t.updated_at).limit(limit)
        conn = self._conn
        return list(conn.execute(query).scalars())

    def holds_in_doubt(self, created_before: datetime, limit: int) -> list[str]:
        t = tasks.c
        query = (
            sa.select(t.id)
            .where(
                t.hold_state == HoldState.PLACING.value,
                t.status.in_(_OPEN),
                t.created_at < created_before,
            )
            .order_by(t.created_at)
            .limit(limit)
        )
        conn = self._conn
        return list(conn.execute(query).scalars())

    # --- mapping -------------------------------------------------------------------------------

    def _notify(self, conn: Connection, task_id: str) -> None:
        if self._pg:
            conn.execute(sa.select(sa.func.pg_notify(NOTIFY_CHANNEL, task_id)))

    @staticmethod
    def _insert_events(conn: Connection, task: Task) -> None:
        if task.new_events:
            conn.execute(
                task_events.insert(),
                [
                    {
                        "task_id": e.task_id,
                        "sequence": e.sequence,
                        "status": e.status.value,
                        "attempts": e.attempts,
                        "error_reason": e.error_reason,
                        "created_at": e.at,
                    }
                    for e in task.new_events
                ],
            )

    @staticmethod
    def _row(task: Task) -> dict[str, Any]:
        return {
            "id": task.id,
            "user_id": task.user_id,
            "type": task.type.value,
            "status": task.status.value,
            "hold_state": task.hold_state.value,
            "params": task.params,
            "input_keys": list(task.input_keys),
            "cost": task.cost,
            "provider": task.provider,
            "request_id": task.request_id,
            "attempts": task.attempts,
            "error_reason": task.error_reason,
            "error_message": task.error_message,
            "provider_job_id": task.provider_job_id,
            "created_at": task.created_at,
            "updated_at": task.updated_at or task.created_at,
            "started_at": task.started_at,
            "finished_at": task.finished_at,
            "deadline_at": task.deadline_at,
            "next_attempt_at": task.next_attempt_at,
            "next_poll_at": task.next_poll_at,
            "polls": task.polls,
            "lease_owner": task.lease_owner,
            "lease_expires_at": task.lease_expires_at,
            "last_sequence": task.last_sequence,
        }

    @staticmethod
    def _task(r: Any) -> Task:
        return Task(
            id=r["id"],
            user_id=r["user_id"],
            type=TaskType(r["type"]),
            params=dict(r["params"]),
            input_keys=tuple(r["input_keys"]),
            cost=r["cost"],
            provider=r["provider"],
            created_at=as_utc(r["created_at"]),
            deadline_at=as_utc(r["deadline_at"]),
            request_id=r["request_id"],
            status=TaskStatus(r["status"]),
            hold_state=HoldState(r["hold_state"]),
            attempts=r["attempts"],
            error_reason=r["error_reason"],
            error_message=r["error_message"],
            provider_job_id=r["provider_job_id"],
            updated_at=as_utc_or_none(r["updated_at"]),
            started_at=as_utc_or_none(r["started_at"]),
            finished_at=as_utc_or_none(r["finished_at"]),
            next_attempt_at=as_utc_or_none(r["next_attempt_at"]),
            next_poll_at=as_utc_or_none(r["next_poll_at"]),
            polls=r["polls"],
            lease_owner=r["lease_owner"],
            lease_expires_at=as_utc_or_none(r["lease_expires_at"]),
            last_sequence=r["last_sequence"],
            version=r["version"],
        )

    @staticmethod
    def _image_row(i: ResultImage) -> dict[str, Any]:
        return {
            "id": i.id,
            "task_id": i.task_id,
            "user_id": i.user_id,
            "task_type": i.task_type.value,
            "idx": i.index,
            "key": i.key,
            "thumbnail_key": i.thumbnail_key,
            "content_type": i.content_type,
            "size": i.size,
            "width": i.width,
            "height": i.height,
            "sha256": i.sha256,
            "created_at": i.created_at,
        }

    @staticmethod
    def _image(r: Any) -> ResultImage:
        return ResultImage(
            id=r["id"],
            task_id=r["task_id"],
            user_id=r["user_id"],
            task_type=TaskType(r["task_type"]),
            index=r["idx"],
            key=r["key"],
            thumbnail_key=r["thumbnail_key"],
            content_type=r["content_type"],
            size=r["size"],
            width=r["width"],
            height=r["height"],
            sha256=r["sha256"],
            created_at=as_utc(r["created_at"]),
        )


class SqlTasksUnitOfWork(SqlUnitOfWork):
    """One database transaction, begun on ``__enter__``; rolled back unless ``commit()`` was
    called. ``commit()`` ends it (it does not start another)."""

    tasks: TaskRepository

    def _bind(self, conn: Connection) -> None:
        self.tasks = SqlTaskRepository(conn)


class SqlTasksUnitOfWorkFactory:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def __call__(self) -> SqlTasksUnitOfWork:
        return SqlTasksUnitOfWork(self.engine)

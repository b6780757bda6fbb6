"""The task repository on SQLAlchemy Core: SQLite (embedded default) and PostgreSQL.

A unit of work is one transaction; every update in it is guarded by the task's ``version``
(optimistic concurrency). Work is leased with ``SELECT … FOR UPDATE SKIP LOCKED`` on PostgreSQL,
so several workers never claim the same task; on SQLite every transaction is ``BEGIN IMMEDIATE``
(one writer at a time), which gives the same guarantee. On PostgreSQL every inserted event sends
``NOTIFY atelier_task_events`` with the task id (a trigger, migration 0002), delivered at commit,
so watchers on every replica wake up.

Statements are built once (per dialect) and only bound per call. An UPDATE writes only the
columns that changed since the task was read: the repository keeps the row it read (or wrote)
on the task object (``_STORED``, its private memo) and compares. The daily limit is a counter per
user and UTC day (``task_daily_counts``): one upsert that only increments below the limit, in the
transaction that inserts the task; deleting or abandoning a task gives its count back in the
transaction that does it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from atelier_common.db import SqlUnitOfWork
from atelier_common.timestamps import as_utc, as_utc_or_none
from sqlalchemy import Connection, Engine
from sqlalchemy.dialects import postgresql, sqlite

from atelier_tasks.adapters.db.decisions import SqlModerationDecisions
from atelier_tasks.adapters.db.tables import task_daily_counts, task_events, task_images, tasks
from atelier_tasks.application.ports import (
    ClaimKind,
    ConcurrentUpdate,
    DailyQuota,
    Page,
    TaskRepository,
    TaskSummary,
)
from atelier_tasks.application.ports.decisions import ModerationDecisions
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
_ABANDONED = frozenset(r.value for r in ABANDONED_REASONS)
# The row a task was read or last written as (a dict of _row() or the database's RowMapping),
# kept in the task's __dict__ by this adapter only; an UPDATE sets what differs from it.
_STORED = "_atelier_stored_row"


def _limit_reached(quota: DailyQuota) -> DailyLimitReached:
    return DailyLimitReached(
        f"daily limit of {quota.limit} generations reached",
        metadata={"limit": str(quota.limit)},
    )


def _added(task: Task, row: dict[str, Any]) -> Task:
    """The task as stored at version 1 (``row``: its columns, for writing only what changes)."""
    task.version = 1
    task.new_events.clear()
    vars(task)[_STORED] = row
    return task


_IMAGE = "i_"  # prefix of the image columns when read joined to their task


def _day(created_at: datetime) -> date:
    """The day a task counts against: the UTC date of its creation."""
    return as_utc(created_at).date()


def _was_abandoned(row: Mapping[Any, Any]) -> bool:
    return row["status"] == TaskStatus.FAILED.value and row["error_reason"] in _ABANDONED


class _Statements:
    """Every statement of the repository, built once per dialect."""

    def __init__(self, dialect: str) -> None:
        insert: Any = postgresql.insert if dialect == "postgresql" else sqlite.insert
        t, c, p = tasks.c, task_daily_counts.c, sa.bindparam
        self.insert_task = insert(tasks).on_conflict_do_nothing().returning(t.id)
        self.insert_events = task_events.insert()
        self.insert_images = task_images.insert()
        self.take_count = (
            insert(task_daily_counts)
            .values(user_id=p("user_id"), day=p("day"), n=1)
            .on_conflict_do_update(
                index_elements=[c.user_id, c.day],
                set_={"n": c.n + 1},
                where=c.n < p("limit"),
            )
            .returning(c.n)
        )
        self.give_back = (
            task_daily_counts.update()
            .where(c.user_id == p("c_user"), c.day == p("c_day"), c.n > 0)
            .values(n=c.n - 1)
        )
        self.get = sa.select(tasks).where(t.id == p("id"))
        self.get_own = self.get.where(t.user_id == p("user_id"))
        self.get_with_images = (
            sa.select(tasks, *(col.label(_IMAGE + col.name) for col in task_images.c))
            .select_from(tasks.outerjoin(task_images, task_images.c.task_id == t.id))
            .where(t.id == p("id"), t.user_id == p("user_id"))
            .order_by(task_images.c.idx)
        )
        self.by_request = sa.select(tasks).where(
            t.user_id == p("user_id"), t.request_id == p("request_id")
        )
        self.delete_images = task_images.delete().where(task_images.c.task_id == p("id"))
        self.delete_events = task_events.delete().where(task_events.c.task_id == p("id"))
        self.delete_task = (
            tasks.delete()
            .where(t.id == p("id"))
            .returning(t.user_id, t.created_at, t.status, t.error_reason)
        )
        self.notify = sa.select(sa.func.pg_notify(NOTIFY_CHANNEL, p("task_id")))
        self._updates: dict[tuple[str, ...], sa.Update] = {}
        self._creates: dict[tuple[str, ...], sa.Executable] = {}

    def create(self, columns: tuple[str, ...]) -> sa.Executable:
        """PostgreSQL: a new task, its place in the day's count and its first event in ONE
        statement (data-modifying CTEs) — what ``insert_task``, ``take_count`` and
        ``insert_events`` do in three. Answers (id, n): id NULL when the request id is taken
        (nothing was written), n NULL when the day's count is full (the caller rolls back)."""
        statement = self._creates.get(columns)
        if statement is not None:
            return statement
        t, c, e, p = tasks.c, task_daily_counts.c, task_events.c, sa.bindparam
        new_task = (
            postgresql.insert(tasks)
            .values({name: p(name) for name in columns})
            .on_conflict_do_nothing()
            .returning(t.id, t.user_id)
            .cte("new_task")
        )
        taken = (
            postgresql.insert(task_daily_counts)
            .from_select(
                [c.user_id, c.day, c.n],
                sa.select(new_task.c.user_id, p("day", type_=c.day.type), sa.literal(1)),
            )
            .on_conflict_do_update(
                index_elements=[c.user_id, c.day],
                set_={"n": c.n + 1},
                where=c.n < p("limit", type_=sa.Integer),
            )
            .returning(c.n)
            .cte("taken")
        )
        event_columns = ("sequence", "status", "attempts", "error_reason", "created_at")
        first_event = (
            task_events.insert()
            .from_select(
                [e.task_id, *(e[name] for name in event_columns)],
                sa.select(
                    new_task.c.id,
                    *(p(f"e_{name}", type_=e[name].type) for name in event_columns),
                ),
            )
            .cte("first_event")
        )
        created = sa.select(
            sa.select(new_task.c.id).scalar_subquery().label("id"),
            sa.select(taken.c.n).scalar_subquery().label("n"),
        ).add_cte(first_event)
        self._creates[columns] = created
        return created

    def update(self, columns: tuple[str, ...]) -> sa.Update:
        """UPDATE of these columns (and the version), guarded by id and version."""
        statement = self._updates.get(columns)
        if statement is None:
            p = sa.bindparam
            statement = (
                tasks.update()
                .where(tasks.c.id == p("w_id"), tasks.c.version == p("w_version"))
                .values({**{name: p(name) for name in columns}, "version": p("w_next")})
            )
            if len(self._updates) < 512:  # the code writes a few dozen column sets
                self._updates[columns] = statement
        return statement


_STATEMENTS = {name: _Statements(name) for name in ("postgresql", "sqlite")}


class SqlTaskRepository:
    """The tasks tables, inside the transaction of a :class:`SqlTasksUnitOfWork`."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._pg = conn.dialect.name == "postgresql"
        self._sql = _STATEMENTS["postgresql" if self._pg else "sqlite"]

    # --- writes --------------------------------------------------------------------------------

    def add(self, task: Task, quota: DailyQuota | None = None) -> Task:
        if self._pg and quota is not None and quota.limit > 0 and len(task.new_events) == 1:
            return self._add_in_one_statement(task, quota)
        conn, sql = self._conn, self._sql
        row = self._row(task)
        # A duplicate request id inserts nothing (the transaction stays usable).
        inserted = self._insert_new(
            task, lambda: conn.execute(sql.insert_task, {**row, "version": 1}).first()
        )
        if isinstance(inserted, Task):
            return inserted
        if quota is not None:
            taken = quota.limit > 0 and (
                conn.execute(
                    sql.take_count,
                    {"user_id": task.user_id, "day": _day(task.created_at), "limit": quota.limit},
                ).first()
                is not None
            )
            if not taken:  # the caller rolls back, which removes the task again
                raise _limit_reached(quota)
        self._insert_events(conn, task)
        return _added(task, row)

    def _add_in_one_statement(self, task: Task, quota: DailyQuota) -> Task:
        """:meth:`add` on PostgreSQL for a new task with its first event: one round trip."""
        conn = self._conn
        row = self._row(task)
        [event] = task.new_events
        params = {
            **row,
            "version": 1,
            "day": _day(task.created_at),
            "limit": quota.limit,
            "e_sequence": event.sequence,
            "e_status": event.status.value,
            "e_attempts": event.attempts,
            "e_error_reason": event.error_reason,
            "e_created_at": event.at,
        }
        statement = self._sql.create((*row, "version"))

        def insert() -> sa.Row[Any] | None:
            created = conn.execute(statement, params).one()
            return created if created.id is not None else None  # None: the request id is taken

        created = self._insert_new(task, insert)
        if isinstance(created, Task):
            return created
        if created.n is None:  # the caller rolls back, which removes the task and its event
            raise _limit_reached(quota)
        return _added(task, row)

    def _insert_new(
        self, task: Task, insert: Callable[[], sa.Row[Any] | None]
    ) -> sa.Row[Any] | Task:
        """Run ``insert`` (None: nothing was written, the request id is taken) and return what
        it wrote, or the task that has the request id — unless that one was abandoned meanwhile,
        which frees its request id: then try again."""
        for _ in range(3):
            inserted = insert()
            if inserted is not None:
                return inserted
            existing = (
                self.find_by_request(task.user_id, task.request_id) if task.request_id else None
            )
            if existing is not None:
                return existing
        raise RuntimeError(f"task {task.id} could not be inserted")

    def save(self, task: Task, images: Sequence[ResultImage] = ()) -> None:
        conn = self._conn
        self._write(conn, task)
        if task.new_events:
            self._insert_events(conn, task)  # watchers care about events only (NOTIFY trigger)
        if images:
            conn.execute(self._sql.insert_images, [self._image_row(i) for i in images])
        task.version += 1
        task.new_events.clear()

    def _write(self, conn: Connection, task: Task) -> None:
        """UPDATE what changed since the task was read, if its version is still the stored
        one (else ConcurrentUpdate); give its daily count back if this abandons it."""
        sql = self._sql
        row = self._row(task)
        before = self._stored(task)
        changed = {k: v for k, v in row.items() if before[k] != v}
        params = {**changed, "w_id": task.id, "w_version": task.version, "w_next": task.version + 1}
        if conn.execute(sql.update(tuple(changed)), params).rowcount != 1:
            raise ConcurrentUpdate(task.id)
        if _was_abandoned(row) and not _was_abandoned(before):
            conn.execute(sql.give_back, {"c_user": task.user_id, "c_day": _day(task.created_at)})
        vars(task)[_STORED] = row

    def _stored(self, task: Task) -> Mapping[Any, Any]:
        """The row the task was read or last written as (read again if the task object did
        not come from this adapter)."""
        stored = vars(task).get(_STORED)
        if stored is None:
            fresh = self._conn.execute(self._sql.get, {"id": task.id}).first()
            if fresh is None or fresh.version != task.version:
                raise ConcurrentUpdate(task.id)
            stored = fresh._mapping
        if isinstance(stored, dict):
            return stored
        return self._row(self._task(stored))

    def delete(self, task_id: str) -> None:
        conn, sql = self._conn, self._sql
        conn.execute(sql.delete_images, {"id": task_id})
        conn.execute(sql.delete_events, {"id": task_id})
        gone = conn.execute(sql.delete_task, {"id": task_id}).first()
        if gone is not None and not _was_abandoned(gone._mapping):
            conn.execute(sql.give_back, {"c_user": gone.user_id, "c_day": _day(gone.created_at)})
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
            self._write(conn, task)
            if task.new_events:
                self._insert_events(conn, task)
            claimed.append(task)
        for task in claimed:
            task.version += 1
            task.new_events.clear()
        return claimed

    # --- reads ---------------------------------------------------------------------------------

    def get(self, task_id: str, user_id: str | None = None) -> Task | None:
        sql = self._sql
        if user_id is None:
            row = self._conn.execute(sql.get, {"id": task_id}).first()
        else:
            row = self._conn.execute(sql.get_own, {"id": task_id, "user_id": user_id}).first()
        return self._task(row._mapping) if row else None

    def get_with_images(self, task_id: str, user_id: str) -> tuple[Task, list[ResultImage]] | None:
        rows = self._conn.execute(
            self._sql.get_with_images, {"id": task_id, "user_id": user_id}
        ).all()
        if not rows:
            return None
        task = self._task(rows[0]._mapping)
        images = [
            self._image(r._mapping, _IMAGE) for r in rows if r._mapping[_IMAGE + "id"] is not None
        ]
        return task, images

    def find_by_request(self, user_id: str, request_id: str) -> Task | None:
        row = self._conn.execute(
            self._sql.by_request, {"user_id": user_id, "request_id": request_id}
        ).first()
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
            at, last_id = page.after  # a row comparison: an index condition, not a filter
            query = query.where(sa.tuple_(t.created_at, t.id) < sa.tuple_(at, last_id))
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
            query = query.where(sa.tuple_(i.created_at, i.id) < sa.tuple_(at, last_id))
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
        """For a change that inserts no event (a delete); events notify by trigger."""
        if self._pg:
            conn.execute(self._sql.notify, {"task_id": task_id})

    def _insert_events(self, conn: Connection, task: Task) -> None:
        rows = [
            {
                "task_id": e.task_id,
                "sequence": e.sequence,
                "status": e.status.value,
                "attempts": e.attempts,
                "error_reason": e.error_reason,
                "created_at": e.at,
            }
            for e in task.new_events
        ]
        if rows:
            conn.execute(self._sql.insert_events, rows[0] if len(rows) == 1 else rows)

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
        task = Task(
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
        vars(task)[_STORED] = r
        return task

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
    def _image(r: Any, p: str = "") -> ResultImage:
        return ResultImage(
            id=r[p + "id"],
            task_id=r[p + "task_id"],
            user_id=r[p + "user_id"],
            task_type=TaskType(r[p + "task_type"]),
            index=r[p + "idx"],
            key=r[p + "key"],
            thumbnail_key=r[p + "thumbnail_key"],
            content_type=r[p + "content_type"],
            size=r[p + "size"],
            width=r[p + "width"],
            height=r[p + "height"],
            sha256=r[p + "sha256"],
            created_at=as_utc(r[p + "created_at"]),
        )


class SqlTasksUnitOfWork(SqlUnitOfWork):
    """One database transaction, begun on ``__enter__``; rolled back unless ``commit()`` was
    called. ``commit()`` ends it (it does not start another)."""

    tasks: TaskRepository
    moderation: ModerationDecisions

    def _bind(self, conn: Connection) -> None:
        self.tasks = SqlTaskRepository(conn)
        self.moderation = SqlModerationDecisions(conn)


class SqlTasksUnitOfWorkFactory:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def __call__(
        self, *, read_only: bool = False, one_statement: bool = False
    ) -> SqlTasksUnitOfWork:
        return SqlTasksUnitOfWork(self.engine, read_only=read_only, one_statement=one_statement)

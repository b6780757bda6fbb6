"""Content moderation decisions on SQLAlchemy Core (SQLite and PostgreSQL), inside the tasks unit
of work's transaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from atelier_common.timestamps import as_utc, as_utc_or_none
from sqlalchemy import Connection

from atelier_tasks.adapters.db.tables import moderation_decisions as md
from atelier_tasks.application.ports.decisions import DecisionFilter, ModerationRecord
from atelier_tasks.application.ports.moderation import ModerationLabel, ModerationSubject, Verdict

_p = sa.bindparam
_INSERT = md.insert()
_GET = sa.select(md).where(md.c.id == _p("id"))
_OF_TASK = sa.select(md).where(md.c.task_id == _p("task_id")).order_by(md.c.created_at, md.c.id)
_ALLOWED = sa.select(md.c.content_sha256).where(
    md.c.task_id == _p("task_id"),
    md.c.subject == _p("subject"),
    md.c.verdict == Verdict.ALLOWED.value,
)
_OVERTURN = (
    md.update()
    .where(md.c.id == _p("w_id"), md.c.overturned_at.is_(None))
    .values(overturned_at=_p("at"), overturned_by=_p("by"), rerun_task_id=_p("rerun"))
)


class SqlModerationDecisions:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def add(self, records: Sequence[ModerationRecord]) -> None:
        if records:
            rows = [_row(r) for r in records]
            self._conn.execute(_INSERT, rows[0] if len(rows) == 1 else rows)

    def get(self, decision_id: str) -> ModerationRecord | None:
        row = self._conn.execute(_GET, {"id": decision_id}).first()
        return _record(row._mapping) if row else None

    def of_task(self, task_id: str) -> list[ModerationRecord]:
        return [_record(r._mapping) for r in self._conn.execute(_OF_TASK, {"task_id": task_id})]

    def allowed_content(self, task_id: str, subject: ModerationSubject) -> set[str]:
        rows = self._conn.execute(_ALLOWED, {"task_id": task_id, "subject": subject.value})
        return set(rows.scalars())

    def list(
        self, where: DecisionFilter, size: int, after: tuple[datetime, str] | None
    ) -> list[ModerationRecord]:
        query = sa.select(md)
        if where.verdict is not None:
            query = query.where(md.c.verdict == where.verdict.value)
        if where.user_id is not None:
            query = query.where(md.c.user_id == where.user_id)
        if where.task_id is not None:
            query = query.where(md.c.task_id == where.task_id)
        if after is not None:
            query = query.where(sa.tuple_(md.c.created_at, md.c.id) < sa.tuple_(*after))
        query = query.order_by(md.c.created_at.desc(), md.c.id.desc()).limit(size)
        return [_record(r._mapping) for r in self._conn.execute(query)]

    def overturn(self, decision_id: str, at: datetime, by: str, rerun_task_id: str | None) -> bool:
        params = {"w_id": decision_id, "at": at, "by": by, "rerun": rerun_task_id}
        return self._conn.execute(_OVERTURN, params).rowcount == 1


def _row(r: ModerationRecord) -> dict[str, Any]:
    return {
        "id": r.id,
        "task_id": r.task_id,
        "user_id": r.user_id,
        "subject": r.subject.value,
        "verdict": r.verdict.value,
        "labels": [{"name": label.name, "confidence": label.confidence} for label in r.labels],
        "provider": r.provider,
        "request_id": r.request_id,
        "content_sha256": r.content_sha256,
        "content_key": r.content_key,
        "created_at": r.created_at,
        "overturned_at": r.overturned_at,
        "overturned_by": r.overturned_by,
        "rerun_task_id": r.rerun_task_id,
    }


def _record(r: Any) -> ModerationRecord:
    return ModerationRecord(
        id=r["id"],
        user_id=r["user_id"],
        task_id=r["task_id"],
        subject=ModerationSubject(r["subject"]),
        verdict=Verdict(r["verdict"]),
        labels=tuple(
            ModerationLabel(str(label["name"]), float(label["confidence"]))
            for label in r["labels"] or ()
        ),
        provider=r["provider"],
        request_id=r["request_id"],
        content_sha256=r["content_sha256"],
        content_key=r["content_key"],
        created_at=as_utc(r["created_at"]),
        overturned_at=as_utc_or_none(r["overturned_at"]),
        overturned_by=r["overturned_by"],
        rerun_task_id=r["rerun_task_id"],
    )

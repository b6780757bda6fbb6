"""task_daily_counts, the status-filtered listing index, NOTIFY from a trigger (PostgreSQL)

The daily limit was a ``count(*)`` of the user's tasks since midnight under an advisory lock; it
is now a counter per user and UTC day, taken by one upsert in the transaction that inserts the
task. The counters of the last two days are filled from the tasks already there (older days
are never asked). On PostgreSQL the ``NOTIFY atelier_task_events`` that wakes watchers on every
replica is sent by a trigger on ``task_events`` (every status change inserts an event), so a
write no longer needs a statement of its own for it.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

ABANDONED = "('BILLING_UNAVAILABLE', 'CREATE_INTERRUPTED')"

NOTIFY_FUNCTION = """
CREATE OR REPLACE FUNCTION atelier_notify_task_event() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('atelier_task_events', NEW.task_id);
    RETURN NULL;
END
$$
"""


def upgrade() -> None:
    op.create_table(
        "task_daily_counts",
        sa.Column("user_id", sa.String(128), primary_key=True),
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("n", sa.Integer, nullable=False),
        sa.CheckConstraint("n >= 0", name="ck_task_daily_counts_n_non_negative"),
    )
    pg = op.get_bind().dialect.name == "postgresql"
    day = "(created_at AT TIME ZONE 'UTC')::date" if pg else "date(created_at)"
    since = "now() - interval '2 days'" if pg else "datetime('now', '-2 days')"
    op.execute(
        f"""
        INSERT INTO task_daily_counts (user_id, day, n)
        SELECT user_id, {day}, count(*) FROM tasks
        WHERE created_at >= {since}
          AND NOT (status = 'failed' AND error_reason IS NOT NULL
                   AND error_reason IN {ABANDONED})
        GROUP BY user_id, {day}
        """
    )
    op.create_index(
        "ix_tasks_user_status_created", "tasks", ["user_id", "status", "created_at", "id"]
    )
    if pg:
        op.execute(NOTIFY_FUNCTION)
        op.execute(
            "CREATE TRIGGER task_events_notify AFTER INSERT ON task_events "
            "FOR EACH ROW EXECUTE FUNCTION atelier_notify_task_event()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS task_events_notify ON task_events")
        op.execute("DROP FUNCTION IF EXISTS atelier_notify_task_event()")
    op.drop_index("ix_tasks_user_status_created", "tasks")
    op.drop_table("task_daily_counts")

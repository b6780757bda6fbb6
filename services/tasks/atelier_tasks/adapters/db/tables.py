"""Table definitions (the Alembic migrations create exactly these)."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

tasks = sa.Table(
    "tasks",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("user_id", sa.String(128), nullable=False),
    sa.Column("type", sa.String(32), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("hold_state", sa.String(16), nullable=False),
    sa.Column("params", sa.JSON, nullable=False),
    sa.Column("input_keys", sa.JSON, nullable=False),
    sa.Column("cost", sa.Integer, nullable=False),
    sa.Column("provider", sa.String(32), nullable=False),
    sa.Column("request_id", sa.String(128), nullable=True),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("error_reason", sa.String(64), nullable=True),
    sa.Column("error_message", sa.Text, nullable=True),
    sa.Column("provider_job_id", sa.String(128), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("deadline_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("next_poll_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("polls", sa.Integer, nullable=False, server_default="0"),
    sa.Column("lease_owner", sa.String(128), nullable=True),
    sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("last_sequence", sa.Integer, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.CheckConstraint("cost >= 0", name="ck_tasks_cost_non_negative"),
    sa.CheckConstraint(
        "status IN ('pending', 'processing', 'succeeded', 'failed', 'cancelled')",
        name="ck_tasks_status",
    ),
    sa.CheckConstraint(
        "hold_state IN ('placing', 'held', 'captured', 'released')", name="ck_tasks_hold_state"
    ),
    sa.UniqueConstraint("user_id", "request_id", name="uq_tasks_user_request"),
    # The user's listing, newest first (scanned backwards), keyset by (created_at, id) …
    sa.Index("ix_tasks_user_created", "user_id", "created_at", "id"),
    # … and the same filtered by status (migration 0002).
    sa.Index("ix_tasks_user_status_created", "user_id", "status", "created_at", "id"),
    sa.Index("ix_tasks_status_next_attempt", "status", "next_attempt_at"),
    sa.Index("ix_tasks_provider_job", "provider", "provider_job_id"),
)

# Tasks counted against the daily limit, per user and UTC day of ``created_at`` (migration 0002):
# taken in the transaction that inserts the task, given back in the one that deletes it (billing
# refused) or abandons it (the caller was told nothing was done).
task_daily_counts = sa.Table(
    "task_daily_counts",
    metadata,
    sa.Column("user_id", sa.String(128), primary_key=True),
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("n", sa.Integer, nullable=False),
    sa.CheckConstraint("n >= 0", name="ck_task_daily_counts_n_non_negative"),
)

task_events = sa.Table(
    "task_events",
    metadata,
    sa.Column(
        "task_id", sa.String(64), sa.ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("sequence", sa.Integer, primary_key=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("error_reason", sa.String(64), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

task_images = sa.Table(
    "task_images",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column(
        "task_id", sa.String(64), sa.ForeignKey("tasks.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("user_id", sa.String(128), nullable=False),
    sa.Column("task_type", sa.String(32), nullable=False),
    sa.Column("idx", sa.Integer, nullable=False),
    sa.Column("key", sa.String(512), nullable=False),
    sa.Column("thumbnail_key", sa.String(512), nullable=False),
    sa.Column("content_type", sa.String(64), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("width", sa.Integer, nullable=False),
    sa.Column("height", sa.Integer, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("task_id", "idx", name="uq_task_images_task_idx"),
    sa.Index("ix_task_images_user_created", "user_id", "created_at", "id"),
)

# Content moderation decisions (migration 0003): one row per check. ``task_id`` is NULL for a
# refused prompt (its task was never created); an overturn sets ``overturned_*`` and the task
# it re-ran. Not a foreign key: a decision outlives a task deleted because billing refused it.
moderation_decisions = sa.Table(
    "moderation_decisions",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("task_id", sa.String(64), nullable=True),
    sa.Column("user_id", sa.String(128), nullable=False),
    sa.Column("subject", sa.String(32), nullable=False),
    sa.Column("verdict", sa.String(16), nullable=False),
    sa.Column("labels", sa.JSON, nullable=False),
    sa.Column("provider", sa.String(32), nullable=False),
    sa.Column("request_id", sa.String(128), nullable=True),
    sa.Column("content_sha256", sa.String(64), nullable=False),
    sa.Column("content_key", sa.String(512), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("overturned_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("overturned_by", sa.String(128), nullable=True),
    sa.Column("rerun_task_id", sa.String(64), nullable=True),
    sa.CheckConstraint("verdict IN ('allowed', 'rejected')", name="ck_moderation_verdict"),
    sa.CheckConstraint(
        "subject IN ('prompt', 'input_image', 'result_image')", name="ck_moderation_subject"
    ),
    # The review list (newest first, by verdict), a user's (the timeline) and a task's.
    sa.Index("ix_moderation_verdict_created", "verdict", "created_at", "id"),
    sa.Index("ix_moderation_user_created", "user_id", "created_at", "id"),
    sa.Index("ix_moderation_task", "task_id", "subject"),
)

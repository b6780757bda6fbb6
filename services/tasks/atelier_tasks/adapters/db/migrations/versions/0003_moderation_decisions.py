"""moderation_decisions: every content moderation decision (issue 14)

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "moderation_decisions",
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
    )
    op.create_index(
        "ix_moderation_verdict_created", "moderation_decisions", ["verdict", "created_at", "id"]
    )
    op.create_index(
        "ix_moderation_user_created", "moderation_decisions", ["user_id", "created_at", "id"]
    )
    op.create_index("ix_moderation_task", "moderation_decisions", ["task_id", "subject"])


def downgrade() -> None:
    op.drop_table("moderation_decisions")

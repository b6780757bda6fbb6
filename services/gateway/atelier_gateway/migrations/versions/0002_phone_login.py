"""Phone + SMS log-in: SMS challenges (one per phone) and send windows (one per address).

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


def upgrade() -> None:
    op.create_table(
        "sms_challenges",
        sa.Column("phone", sa.String(32), primary_key=True),
        sa.Column("code_hash", sa.String(64), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("wrong_attempts", sa.Integer(), nullable=False),
        sa.Column("last_sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("window_started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("window_sends", sa.Integer(), nullable=False),
    )
    op.create_table(
        "sms_send_windows",
        sa.Column("address", sa.String(64), primary_key=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sends", sa.Integer(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("sms_send_windows")
    op.drop_table("sms_challenges")

"""Tables of the gateway database (SQLAlchemy Core; migrations: ``atelier_gateway.migrations``)."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
)

metadata = MetaData()

users = Table(
    "users",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("email", String(254), unique=True, nullable=True),
    Column("phone", String(32), unique=True, nullable=True),
    Column("password_hash", String(255), nullable=True),
    Column("role", String(16), nullable=False),
    Column("name", String(100), nullable=False, default=""),
    Column("avatar_url", String(2000), nullable=True),
    Column("preferences", JSON, nullable=False),
    Column("billing_ready", Boolean, nullable=False, default=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    CheckConstraint("role IN ('user', 'admin')", name="ck_users_role"),
)

refresh_tokens = Table(
    "refresh_tokens",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("user_id", String(64), ForeignKey("users.id"), nullable=False, index=True),
    Column("family_id", String(64), nullable=False, index=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("used_at", DateTime(timezone=True), nullable=True),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("user_id", String(64), nullable=False),
    Column("key", String(255), nullable=False),
    Column("scope", String(128), nullable=False),
    Column("request_hash", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("status", Integer, nullable=True),
    Column("response", LargeBinary, nullable=True),
    PrimaryKeyConstraint("user_id", "key", name="pk_idempotency_keys"),
)

Index("ix_idempotency_keys_created_at", idempotency_keys.c.created_at)

# Phone + SMS log-in (F2): one row per phone number (its current code, hashed, and its sending
# budget) and one per client address (hashed) that asked for codes; rows are locked FOR UPDATE.
sms_challenges = Table(
    "sms_challenges",
    metadata,
    Column("phone", String(32), primary_key=True),
    Column("code_hash", String(64), nullable=True),
    Column("expires_at", DateTime(timezone=True), nullable=True),
    Column("wrong_attempts", Integer, nullable=False, default=0),
    Column("last_sent_at", DateTime(timezone=True), nullable=True),
    Column("window_started_at", DateTime(timezone=True), nullable=True),
    Column("window_sends", Integer, nullable=False, default=0),
)

sms_send_windows = Table(
    "sms_send_windows",
    metadata,
    Column("address", String(64), primary_key=True),
    Column("started_at", DateTime(timezone=True), nullable=True),
    Column("sends", Integer, nullable=False, default=0),
)

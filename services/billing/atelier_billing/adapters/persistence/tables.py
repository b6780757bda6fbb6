"""The billing schema (SQLAlchemy Core). Migrations in ``migrations/`` create it.

The database guards the invariants itself: balances and grants can never go negative (CHECK),
every idempotency key is UNIQUE, and ledger entries cannot be updated or deleted (triggers,
created by the migration).
"""

from __future__ import annotations

from atelier_common.sqltypes import UtcDateTime
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    false,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

TS = UtcDateTime()
# SQLite has only one INTEGER type that auto-increments; PostgreSQL gets a bigint identity.
BigId = BigInteger().with_variant(Integer(), "sqlite")

accounts = Table(
    "accounts",
    metadata,
    Column("user_id", String(64), primary_key=True),
    Column("available", BigInteger, nullable=False),
    Column("held", BigInteger, nullable=False),
    Column("created_at", TS, nullable=False),
    Column("email", String(320), nullable=True),
    Column("name", String(200), nullable=True),
    CheckConstraint("available >= 0", name="available_non_negative"),
    CheckConstraint("held >= 0", name="held_non_negative"),
)

grants = Table(
    "grants",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("user_id", String(64), ForeignKey("accounts.user_id"), nullable=False),
    Column("source", String(20), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("remaining", BigInteger, nullable=False),
    Column("expired_amount", BigInteger, nullable=False, server_default="0"),
    Column("expires_at", TS, nullable=True),
    Column("created_at", TS, nullable=False),
    Column("expired_at", TS, nullable=True),
    Column("reference", String(200), nullable=False, server_default=""),
    Column("idempotency_key", String(200), nullable=True, unique=True),
    CheckConstraint("amount > 0", name="amount_positive"),
    CheckConstraint("remaining >= 0", name="remaining_non_negative"),
    CheckConstraint("remaining <= amount", name="remaining_within_amount"),
    Index("ix_grants_user_spendable", "user_id", "expires_at"),
)

holds = Table(
    "holds",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("user_id", String(64), ForeignKey("accounts.user_id"), nullable=False),
    Column("request_id", String(128), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("status", String(16), nullable=False),
    Column("reference", String(200), nullable=False, server_default=""),
    Column("created_at", TS, nullable=False),
    Column("settled_at", TS, nullable=True),
    CheckConstraint("amount > 0", name="amount_positive"),
    CheckConstraint("status IN ('held', 'captured', 'released')", name="status_known"),
    UniqueConstraint("user_id", "request_id"),
)

hold_allocations = Table(
    "hold_allocations",
    metadata,
    Column("hold_id", String(64), ForeignKey("holds.id"), primary_key=True),
    Column("grant_id", String(64), ForeignKey("grants.id"), primary_key=True),
    Column("amount", BigInteger, nullable=False),
    CheckConstraint("amount > 0", name="amount_positive"),
)

ledger_entries = Table(
    "ledger_entries",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("user_id", String(64), ForeignKey("accounts.user_id"), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("held_change", BigInteger, nullable=False),
    Column("balance_after", BigInteger, nullable=False),
    Column("reference", String(200), nullable=False, server_default=""),
    Column("reason", String(500), nullable=False, server_default=""),
    Column("grant_id", String(64), nullable=True),
    Column("hold_id", String(64), nullable=True),
    Column("idempotency_key", String(200), nullable=True, unique=True),
    Column("created_at", TS, nullable=False),
    CheckConstraint("balance_after >= 0", name="balance_after_non_negative"),
    Index("ix_ledger_entries_user_id_id", "user_id", "id"),
)

orders = Table(
    "orders",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("number", String(32), nullable=False, unique=True),
    Column("user_id", String(64), ForeignKey("accounts.user_id"), nullable=False),
    Column("request_id", String(128), nullable=True),
    Column("item_id", String(64), nullable=False),
    Column("item_kind", String(16), nullable=False),
    Column("credits", BigInteger, nullable=False),
    Column("period_days", Integer, nullable=False, server_default="0"),
    Column("amount", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("channel", String(32), nullable=False),
    Column("status", String(16), nullable=False),
    Column("checkout_url", String(2000), nullable=True),
    Column("checkout_code_url", String(2000), nullable=True),
    Column("provider_reference", String(255), nullable=True),
    Column("provider_transaction_id", String(255), nullable=True),
    Column("created_at", TS, nullable=False),
    Column("expires_at", TS, nullable=False),
    Column("paid_at", TS, nullable=True),
    Column("failed_at", TS, nullable=True),
    Column("expired_at", TS, nullable=True),
    Column("refunded_at", TS, nullable=True),
    CheckConstraint("amount >= 0", name="amount_non_negative"),
    CheckConstraint(
        "status IN ('pending', 'paid', 'failed', 'expired', 'refunded')", name="status_known"
    ),
    UniqueConstraint("user_id", "request_id"),
    UniqueConstraint("channel", "provider_transaction_id"),
    Index("ix_orders_user_created", "user_id", "created_at"),
    Index("ix_orders_status_expires", "status", "expires_at"),
)

memberships = Table(
    "memberships",
    metadata,
    Column("user_id", String(64), ForeignKey("accounts.user_id"), primary_key=True),
    Column("plan_id", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("period_start", TS, nullable=False),
    Column("period_end", TS, nullable=False),
    Column("quota_total", BigInteger, nullable=False),
    Column("subscription_id", String(255), nullable=True, unique=True),
    Column("cancel_at_period_end", Boolean, nullable=False, server_default=false()),
)

# One provider-side customer per user and provider, created once and remembered.
payment_customers = Table(
    "payment_customers",
    metadata,
    Column("user_id", String(64), ForeignKey("accounts.user_id"), primary_key=True),
    Column("provider", String(32), primary_key=True),
    Column("customer_id", String(255), nullable=False),
    UniqueConstraint("provider", "customer_id"),
)

payment_events = Table(
    "payment_events",
    metadata,
    Column("provider", String(32), primary_key=True),
    Column("event_id", String(255), primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("order_id", String(64), nullable=True),
    Column("received_at", TS, nullable=False),
)

"""SQLAlchemy repositories and unit of work."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from atelier_common.db import SqlUnitOfWork
from atelier_common.timestamps import as_utc, as_utc_or_none
from sqlalchemy import Connection, Engine, Row, func, insert, or_, select, update
from sqlalchemy import delete as sa_delete
from sqlalchemy.exc import IntegrityError

from atelier_gateway.adapters import orm
from atelier_gateway.application.ports import (
    IdempotencyRepository,
    RefreshTokenRepository,
    UserRepository,
)
from atelier_gateway.domain.errors import EmailTaken
from atelier_gateway.domain.model import IdempotencyRecord, RefreshTokenRecord, Role, User


def _user_from_row(row: Row[Any]) -> User:
    m = row._mapping
    return User(
        id=m["id"],
        email=m["email"],
        password_hash=m["password_hash"],
        role=Role(m["role"]),
        created_at=as_utc(m["created_at"]),
        name=m["name"] or "",
        phone=m["phone"],
        avatar_url=m["avatar_url"],
        preferences=dict(m["preferences"] or {}),
        billing_ready=bool(m["billing_ready"]),
    )


class SqlUserRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def add(self, user: User) -> None:
        try:
            with self._conn.begin_nested():
                self._conn.execute(insert(orm.users).values(**self._values(user), id=user.id))
        except IntegrityError as e:
            raise EmailTaken("this email is already registered") from e

    def get(self, user_id: str) -> User | None:
        row = self._conn.execute(select(orm.users).where(orm.users.c.id == user_id)).first()
        return _user_from_row(row) if row else None

    def get_by_email(self, email: str) -> User | None:
        row = self._conn.execute(select(orm.users).where(orm.users.c.email == email)).first()
        return _user_from_row(row) if row else None

    def save(self, user: User) -> None:
        self._conn.execute(
            update(orm.users).where(orm.users.c.id == user.id).values(**self._values(user))
        )

    def search(self, query: str, limit: int, offset: int) -> list[User]:
        stmt = select(orm.users).order_by(orm.users.c.created_at.desc(), orm.users.c.id)
        if query:
            pattern = f"%{query}%"
            stmt = stmt.where(
                or_(
                    func.lower(orm.users.c.email).like(pattern),
                    func.lower(orm.users.c.name).like(pattern),
                    orm.users.c.id == query,
                )
            )
        rows = self._conn.execute(stmt.limit(limit).offset(offset)).all()
        return [_user_from_row(r) for r in rows]

    @staticmethod
    def _values(user: User) -> dict[str, Any]:
        return {
            "email": user.email,
            "phone": user.phone,
            "password_hash": user.password_hash,
            "role": user.role.value,
            "name": user.name,
            "avatar_url": user.avatar_url,
            "preferences": user.preferences,
            "billing_ready": user.billing_ready,
            "created_at": user.created_at,
        }


class SqlRefreshTokenRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def add(self, token: RefreshTokenRecord) -> None:
        self._conn.execute(
            insert(orm.refresh_tokens).values(
                id=token.id,
                user_id=token.user_id,
                family_id=token.family_id,
                token_hash=token.token_hash,
                created_at=token.created_at,
                expires_at=token.expires_at,
                used_at=token.used_at,
                revoked_at=token.revoked_at,
            )
        )

    def get_by_hash(self, token_hash: str) -> RefreshTokenRecord | None:
        t = orm.refresh_tokens
        row = self._conn.execute(select(t).where(t.c.token_hash == token_hash)).first()
        if row is None:
            return None
        m = row._mapping
        return RefreshTokenRecord(
            id=m["id"],
            user_id=m["user_id"],
            family_id=m["family_id"],
            token_hash=m["token_hash"],
            created_at=as_utc(m["created_at"]),
            expires_at=as_utc(m["expires_at"]),
            used_at=as_utc_or_none(m["used_at"]),
            revoked_at=as_utc_or_none(m["revoked_at"]),
        )

    def mark_used(self, token_id: str, at: datetime) -> bool:
        t = orm.refresh_tokens
        result = self._conn.execute(
            update(t)
            .where(t.c.id == token_id, t.c.used_at.is_(None), t.c.revoked_at.is_(None))
            .values(used_at=at)
        )
        return result.rowcount == 1

    def revoke_family(self, family_id: str, at: datetime) -> None:
        t = orm.refresh_tokens
        self._conn.execute(
            update(t)
            .where(t.c.family_id == family_id, t.c.revoked_at.is_(None))
            .values(revoked_at=at)
        )


class SqlIdempotencyRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def get(self, user_id: str, key: str) -> IdempotencyRecord | None:
        t = orm.idempotency_keys
        row = self._conn.execute(select(t).where(t.c.user_id == user_id, t.c.key == key)).first()
        if row is None:
            return None
        m = row._mapping
        return IdempotencyRecord(
            user_id=m["user_id"],
            key=m["key"],
            scope=m["scope"],
            request_hash=m["request_hash"],
            created_at=as_utc(m["created_at"]),
            status=m["status"],
            response=m["response"],
        )

    def claim(self, record: IdempotencyRecord) -> bool:
        try:
            with self._conn.begin_nested():
                self._conn.execute(
                    insert(orm.idempotency_keys).values(
                        user_id=record.user_id,
                        key=record.key,
                        scope=record.scope,
                        request_hash=record.request_hash,
                        created_at=record.created_at,
                    )
                )
        except IntegrityError:
            return False
        return True

    def reclaim(self, user_id: str, key: str, claimed_at: datetime, now: datetime) -> bool:
        t = orm.idempotency_keys
        result = self._conn.execute(
            update(t)
            .where(
                t.c.user_id == user_id,
                t.c.key == key,
                t.c.status.is_(None),
                t.c.created_at == claimed_at,
            )
            .values(created_at=now)
        )
        return result.rowcount == 1

    def complete(self, user_id: str, key: str, status: int, response: bytes) -> None:
        t = orm.idempotency_keys
        self._conn.execute(
            update(t)
            .where(t.c.user_id == user_id, t.c.key == key)
            .values(status=status, response=response)
        )

    def release(self, user_id: str, key: str) -> None:
        t = orm.idempotency_keys
        self._conn.execute(
            sa_delete(t).where(t.c.user_id == user_id, t.c.key == key, t.c.status.is_(None))
        )


class SqlGatewayUnitOfWork(SqlUnitOfWork):
    """One transaction, begun on enter and ended by ``commit``, ``rollback`` or exit (rolled back
    unless committed). The connection goes back to the pool when the transaction ends, so a
    repository used after it fails loudly instead of starting a transaction nobody commits."""

    users: UserRepository
    refresh_tokens: RefreshTokenRepository
    idempotency: IdempotencyRepository

    def _bind(self, conn: Connection) -> None:
        self.users = SqlUserRepository(conn)
        self.refresh_tokens = SqlRefreshTokenRepository(conn)
        self.idempotency = SqlIdempotencyRepository(conn)


class SqlGatewayUnitOfWorkFactory:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def __call__(self) -> SqlGatewayUnitOfWork:
        return SqlGatewayUnitOfWork(self._engine)

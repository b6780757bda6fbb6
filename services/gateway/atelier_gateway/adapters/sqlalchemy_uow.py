"""SQLAlchemy repositories and unit of work."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from atelier_common.db import SqlUnitOfWork
from atelier_common.timestamps import as_utc, as_utc_or_none
from sqlalchemy import Connection, Engine, Row, bindparam, func, insert, or_, select, update
from sqlalchemy import delete as sa_delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from atelier_gateway.adapters import orm
from atelier_gateway.application.ports import (
    IdempotencyRepository,
    RefreshTokenRepository,
    SmsChallengeRepository,
    UserRepository,
)
from atelier_gateway.domain.errors import EmailTaken, PhoneTaken
from atelier_gateway.domain.model import IdempotencyRecord, RefreshTokenRecord, Role, User
from atelier_gateway.domain.sms import SendWindow, SmsChallenge


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
            if user.phone is not None and self.get_by_phone(user.phone) is not None:
                raise PhoneTaken("this phone number belongs to another account") from e
            raise EmailTaken("this email is already registered") from e

    def get(self, user_id: str) -> User | None:
        row = self._conn.execute(select(orm.users).where(orm.users.c.id == user_id)).first()
        return _user_from_row(row) if row else None

    def get_by_email(self, email: str) -> User | None:
        row = self._conn.execute(select(orm.users).where(orm.users.c.email == email)).first()
        return _user_from_row(row) if row else None

    def get_by_phone(self, phone: str) -> User | None:
        row = self._conn.execute(select(orm.users).where(orm.users.c.phone == phone)).first()
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
                    orm.users.c.phone.like(pattern),
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


class _IdempotencyStatements:
    """The Idempotency-Key statements, built once per dialect (they run twice per POST /v1/tasks
    and /v1/orders that carries a key, so only their parameters are bound per call)."""

    def __init__(self, dialect: str) -> None:
        t, p = orm.idempotency_keys, bindparam
        dml: Any = postgresql.insert if dialect == "postgresql" else sqlite.insert
        # One statement claims the key: a row already there (a retry) inserts nothing and
        # raises nothing, so no savepoint is needed around it.
        self.claim = (
            dml(t)
            .values(
                user_id=p("user_id"),
                key=p("key"),
                scope=p("scope"),
                request_hash=p("request_hash"),
                created_at=p("created_at"),
            )
            .on_conflict_do_nothing(index_elements=[t.c.user_id, t.c.key])
            .returning(t.c.user_id)
        )
        mine = (t.c.user_id == p("w_user_id"), t.c.key == p("w_key"))
        self.get = select(t).where(*mine)
        self.reclaim = (
            update(t)
            .where(*mine, t.c.status.is_(None), t.c.created_at == p("w_claimed_at"))
            .values(created_at=p("created_at"))
        )
        self.complete = update(t).where(*mine).values(status=p("status"), response=p("response"))
        self.release = sa_delete(t).where(*mine, t.c.status.is_(None))


_IDEMPOTENCY = {name: _IdempotencyStatements(name) for name in ("postgresql", "sqlite")}


class SqlIdempotencyRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._sql = _IDEMPOTENCY["postgresql" if conn.dialect.name == "postgresql" else "sqlite"]

    def get(self, user_id: str, key: str) -> IdempotencyRecord | None:
        row = self._conn.execute(self._sql.get, {"w_user_id": user_id, "w_key": key}).first()
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
        params = {
            "user_id": record.user_id,
            "key": record.key,
            "scope": record.scope,
            "request_hash": record.request_hash,
            "created_at": record.created_at,
        }
        return self._conn.execute(self._sql.claim, params).first() is not None

    def reclaim(self, user_id: str, key: str, claimed_at: datetime, now: datetime) -> bool:
        params = {"w_user_id": user_id, "w_key": key, "w_claimed_at": claimed_at, "created_at": now}
        return self._conn.execute(self._sql.reclaim, params).rowcount == 1

    def complete(self, user_id: str, key: str, status: int, response: bytes) -> None:
        params = {"w_user_id": user_id, "w_key": key, "status": status, "response": response}
        self._conn.execute(self._sql.complete, params)

    def release(self, user_id: str, key: str) -> None:
        self._conn.execute(self._sql.release, {"w_user_id": user_id, "w_key": key})


def _challenge_from_row(row: Row[Any]) -> SmsChallenge:
    m = row._mapping
    return SmsChallenge(
        phone=m["phone"],
        code_hash=m["code_hash"],
        expires_at=as_utc_or_none(m["expires_at"]),
        wrong_attempts=m["wrong_attempts"],
        last_sent_at=as_utc_or_none(m["last_sent_at"]),
        window_started_at=as_utc_or_none(m["window_started_at"]),
        window_sends=m["window_sends"],
    )


class SqlSmsChallengeRepository:
    """Rows are read FOR UPDATE (PostgreSQL: a row lock until the transaction ends; SQLite: every
    write transaction holds the database lock from BEGIN IMMEDIATE anyway). A missing row is
    inserted first, in a savepoint, so two first sends for one phone end up on one locked row."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def lock(self, phone: str) -> SmsChallenge:
        found = self.get_locked(phone)
        if found is not None:
            return found
        self._insert_if_missing(
            insert(orm.sms_challenges).values(phone=phone, wrong_attempts=0, window_sends=0)
        )
        found = self.get_locked(phone)
        assert found is not None, "the row was just made"
        return found

    def get_locked(self, phone: str) -> SmsChallenge | None:
        t = orm.sms_challenges
        row = self._conn.execute(select(t).where(t.c.phone == phone).with_for_update()).first()
        return _challenge_from_row(row) if row else None

    def save(self, challenge: SmsChallenge) -> None:
        t = orm.sms_challenges
        self._conn.execute(
            update(t)
            .where(t.c.phone == challenge.phone)
            .values(
                code_hash=challenge.code_hash,
                expires_at=challenge.expires_at,
                wrong_attempts=challenge.wrong_attempts,
                last_sent_at=challenge.last_sent_at,
                window_started_at=challenge.window_started_at,
                window_sends=challenge.window_sends,
            )
        )

    def lock_window(self, address: str) -> SendWindow:
        t = orm.sms_send_windows
        query = select(t).where(t.c.address == address).with_for_update()
        row = self._conn.execute(query).first()
        if row is None:
            self._insert_if_missing(insert(t).values(address=address, sends=0))
            row = self._conn.execute(query).one()
        m = row._mapping
        return SendWindow(
            address=m["address"], started_at=as_utc_or_none(m["started_at"]), sends=m["sends"]
        )

    def save_window(self, window: SendWindow) -> None:
        t = orm.sms_send_windows
        self._conn.execute(
            update(t)
            .where(t.c.address == window.address)
            .values(started_at=window.started_at, sends=window.sends)
        )

    def _insert_if_missing(self, statement: Any) -> None:
        try:
            with self._conn.begin_nested():
                self._conn.execute(statement)
        except IntegrityError:
            pass  # made by a concurrent transaction (which we waited for): read it


class SqlGatewayUnitOfWork(SqlUnitOfWork):
    """One transaction, begun on enter and ended by ``commit``, ``rollback`` or exit (rolled back
    unless committed). The connection goes back to the pool when the transaction ends, so a
    repository used after it fails loudly instead of starting a transaction nobody commits."""

    users: UserRepository
    refresh_tokens: RefreshTokenRepository
    idempotency: IdempotencyRepository
    sms_challenges: SmsChallengeRepository

    def _bind(self, conn: Connection) -> None:
        self.users = SqlUserRepository(conn)
        self.refresh_tokens = SqlRefreshTokenRepository(conn)
        self.idempotency = SqlIdempotencyRepository(conn)
        self.sms_challenges = SqlSmsChallengeRepository(conn)


class SqlGatewayUnitOfWorkFactory:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def __call__(self, *, one_statement: bool = False) -> SqlGatewayUnitOfWork:
        return SqlGatewayUnitOfWork(self._engine, one_statement=one_statement)

"""In-memory fakes of the gateway core's ports (they implement the real Protocols)."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self

from atelier_gateway.application.ports import (
    AccessClaims,
    AccessTokenIssuer,
    BillingAccounts,
    GatewayUnitOfWorkFactory,
    PasswordHasher,
    SecretSource,
)
from atelier_gateway.domain.errors import EmailTaken, InvalidAccessToken
from atelier_gateway.domain.model import IdempotencyRecord, RefreshTokenRecord, Role, User
from atelier_ports.problems import Unavailable


class FakeUsers:
    def __init__(self) -> None:
        self.rows: dict[str, User] = {}

    def add(self, user: User) -> None:
        if any(u.email == user.email for u in self.rows.values()):
            raise EmailTaken("taken")
        self.rows[user.id] = replace(user)

    def get(self, user_id: str) -> User | None:
        u = self.rows.get(user_id)
        return replace(u) if u else None

    def get_by_email(self, email: str) -> User | None:
        return next((replace(u) for u in self.rows.values() if u.email == email), None)

    def save(self, user: User) -> None:
        self.rows[user.id] = replace(user)

    def search(self, query: str, limit: int, offset: int) -> list[User]:
        found = [u for u in self.rows.values() if query in (u.email or "")]
        return found[offset : offset + limit]


class FakeRefreshTokens:
    def __init__(self) -> None:
        self.rows: dict[str, RefreshTokenRecord] = {}

    def add(self, token: RefreshTokenRecord) -> None:
        self.rows[token.id] = token

    def get_by_hash(self, token_hash: str) -> RefreshTokenRecord | None:
        return next((t for t in self.rows.values() if t.token_hash == token_hash), None)

    def mark_used(self, token_id: str, at: datetime) -> bool:
        t = self.rows[token_id]
        if t.used_at is not None or t.revoked_at is not None:
            return False
        self.rows[token_id] = replace(t, used_at=at)
        return True

    def revoke_family(self, family_id: str, at: datetime) -> None:
        for key, t in self.rows.items():
            if t.family_id == family_id and t.revoked_at is None:
                self.rows[key] = replace(t, revoked_at=at)


class FakeIdempotency:
    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], IdempotencyRecord] = {}

    def get(self, user_id: str, key: str) -> IdempotencyRecord | None:
        return self.rows.get((user_id, key))

    def claim(self, record: IdempotencyRecord) -> bool:
        if (record.user_id, record.key) in self.rows:
            return False
        self.rows[(record.user_id, record.key)] = record
        return True

    def reclaim(self, user_id: str, key: str, claimed_at: datetime, now: datetime) -> bool:
        r = self.rows.get((user_id, key))
        if r is None or r.status is not None or r.created_at != claimed_at:
            return False
        self.rows[(user_id, key)] = replace(r, created_at=now)
        return True

    def complete(self, user_id: str, key: str, status: int, response: bytes) -> None:
        r = self.rows[(user_id, key)]
        self.rows[(user_id, key)] = replace(r, status=status, response=response)

    def release(self, user_id: str, key: str) -> None:
        r = self.rows.get((user_id, key))
        if r is not None and r.status is None:
            del self.rows[(user_id, key)]


class FakeGatewayUnitOfWork:
    """The ``GatewayUnitOfWork`` port in memory. Its repositories are the "database", shared by
    every unit it makes (``uow()`` returns itself); a unit left without ``commit()`` puts the
    rows back as they were when it began, as the real one rolls back."""

    def __init__(self) -> None:
        self.users = FakeUsers()
        self.refresh_tokens = FakeRefreshTokens()
        self.idempotency = FakeIdempotency()
        self.commits = 0
        self.rollbacks = 0
        self._snapshot: (
            tuple[dict[str, User], dict[str, RefreshTokenRecord], dict[Any, Any]] | None
        ) = None

    def __call__(self) -> Self:
        return self

    def __enter__(self) -> Self:
        assert self._snapshot is None, "a unit of work opened inside another"
        self._snapshot = (
            dict(self.users.rows),
            dict(self.refresh_tokens.rows),
            dict(self.idempotency.rows),
        )
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._snapshot is not None:
            self.rollback()

    def commit(self) -> None:
        assert self._snapshot is not None, "commit() outside the unit's transaction"
        self._snapshot = None
        self.commits += 1

    def rollback(self) -> None:
        if self._snapshot is None:
            return
        users, tokens, keys = self._snapshot
        self.users.rows, self.refresh_tokens.rows, self.idempotency.rows = (
            dict(users),
            dict(tokens),
            dict(keys),
        )
        self._snapshot = None
        self.rollbacks += 1


class FakePasswordHasher:
    def __init__(self) -> None:
        self.verified = 0

    def hash(self, password: str) -> str:
        return "hashed:" + password

    def verify(self, password_hash: str, password: str) -> bool:
        self.verified += 1
        return password_hash == "hashed:" + password

    def needs_rehash(self, password_hash: str) -> bool:
        return False


class FakeTokens:
    lifetime_seconds = 60

    def issue(self, user_id: str, role: Role, now: datetime) -> str:
        return f"access:{user_id}:{role.value}:{int(now.timestamp()) + self.lifetime_seconds}"

    def verify(self, token: str, now: datetime) -> AccessClaims:
        try:
            _, user_id, role, exp = token.split(":")
        except ValueError as e:
            raise InvalidAccessToken("bad") from e
        if int(exp) <= now.timestamp():
            raise InvalidAccessToken("expired")
        return AccessClaims(user_id, Role(role), datetime.fromtimestamp(int(exp), UTC))


class FakeSecrets:
    def __init__(self) -> None:
        self._n = itertools.count(1)

    def new_secret(self) -> str:
        return f"secret-{next(self._n)}"


class FakeBillingAccounts:
    """The BillingAccounts port without billing: records every call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str | None, str | None]] = []
        self.created: set[str] = set()
        self.contacts: list[tuple[str, str | None, str | None]] = []
        self.fail = False

    def set_up_account(self, user_id: str, email: str | None, name: str | None) -> bool:
        if self.fail:
            raise Unavailable("billing is down")
        self.calls.append((user_id, email, name))
        if user_id in self.created:
            return False
        self.created.add(user_id)
        return True

    def update_contact(self, user_id: str, email: str | None, name: str | None) -> None:
        if self.fail:
            raise Unavailable("billing is down")
        self.contacts.append((user_id, email, name))


def _conforms(
    uow: FakeGatewayUnitOfWork,
    hasher: FakePasswordHasher,
    tokens: FakeTokens,
    secrets: FakeSecrets,
    billing: FakeBillingAccounts,
) -> tuple[
    GatewayUnitOfWorkFactory, PasswordHasher, AccessTokenIssuer, SecretSource, BillingAccounts
]:
    return uow, hasher, tokens, secrets, billing  # mypy proves the fakes match their ports

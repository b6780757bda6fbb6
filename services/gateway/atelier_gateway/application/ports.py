"""Ports of the gateway core, implemented by adapters and wired in ``bootstrap``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Protocol, Self

from atelier_gateway.domain.model import IdempotencyRecord, RefreshTokenRecord, Role, User


class UserRepository(Protocol):
    def add(self, user: User) -> None:
        """Insert; raises EmailTaken if the email is already registered."""
        ...

    def get(self, user_id: str) -> User | None: ...

    def get_by_email(self, email: str) -> User | None: ...

    def save(self, user: User) -> None: ...

    def search(self, query: str, limit: int, offset: int) -> list[User]: ...


class RefreshTokenRepository(Protocol):
    def add(self, token: RefreshTokenRecord) -> None: ...

    def get_by_hash(self, token_hash: str) -> RefreshTokenRecord | None: ...

    def mark_used(self, token_id: str, at: datetime) -> bool:
        """Atomically mark an unused, unrevoked token used; False if someone else did first."""
        ...

    def revoke_family(self, family_id: str, at: datetime) -> None: ...


class IdempotencyRepository(Protocol):
    def get(self, user_id: str, key: str) -> IdempotencyRecord | None: ...

    def claim(self, record: IdempotencyRecord) -> bool:
        """Insert the record; False if a record with that user and key already exists."""
        ...

    def reclaim(self, user_id: str, key: str, claimed_at: datetime, now: datetime) -> bool:
        """Take over an unfinished claim made at ``claimed_at``; False if it changed since."""
        ...

    def complete(self, user_id: str, key: str, status: int, response: bytes) -> None: ...

    def release(self, user_id: str, key: str) -> None:
        """Forget an unfinished claim (the first request failed; a retry may try again)."""
        ...


class UnitOfWork(Protocol):
    users: UserRepository
    refresh_tokens: RefreshTokenRepository
    idempotency: IdempotencyRepository

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    def commit(self) -> None: ...


class UnitOfWorkFactory(Protocol):
    def __call__(self) -> UnitOfWork: ...


class PasswordHasher(Protocol):
    def hash(self, password: str) -> str: ...

    def verify(self, password_hash: str, password: str) -> bool: ...

    def needs_rehash(self, password_hash: str) -> bool: ...


@dataclass(frozen=True, slots=True)
class AccessClaims:
    user_id: str
    role: Role
    expires_at: datetime


class AccessTokenIssuer(Protocol):
    @property
    def lifetime_seconds(self) -> int: ...

    def issue(self, user_id: str, role: Role, now: datetime) -> str: ...

    def verify(self, token: str, now: datetime) -> AccessClaims:
        """Raises InvalidAccessToken for anything expired, tampered or unsigned."""
        ...


class SecretSource(Protocol):
    def new_secret(self) -> str:
        """A high-entropy URL-safe secret (refresh tokens)."""
        ...


class BillingAccounts(Protocol):
    def set_up_account(self, user_id: str, email: str | None, name: str | None) -> bool:
        """Create the user's billing account (and sign-up bonus) once; True if created now.

        Raises ``atelier_ports.problems.Unavailable`` if billing cannot be reached.
        """
        ...

    def update_contact(self, user_id: str, email: str | None, name: str | None) -> None:
        """Tell billing the user's new contact details; billing pushes them to payment
        providers' customer records (F3). Raises ``Unavailable`` if billing cannot be reached."""
        ...

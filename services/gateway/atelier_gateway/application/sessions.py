"""Sessions: starting one (an access token and a new refresh-token family), rotating the refresh
token, logging out, and reading an access token."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from atelier_gateway.application.ports import (
    AccessClaims,
    AccessTokenIssuer,
    GatewayUnitOfWorkFactory,
    SecretSource,
)
from atelier_gateway.domain.errors import InvalidRefreshToken, RefreshTokenReused
from atelier_gateway.domain.model import RefreshTokenRecord, User
from atelier_ports.clock import Clock
from atelier_ports.ids import IdGenerator


@dataclass(frozen=True, slots=True)
class Session:
    user: User
    access_token: str
    refresh_token: str
    expires_in: int


def hash_refresh_token(token: str) -> str:
    # Refresh tokens are 256-bit random secrets: a fast hash is enough (no dictionary to try).
    return hashlib.sha256(token.encode()).hexdigest()


class SessionIssuer:
    """Makes the tokens of a session; shared by sign-up, log-in and refresh."""

    def __init__(
        self,
        *,
        uow: GatewayUnitOfWorkFactory,
        tokens: AccessTokenIssuer,
        secrets: SecretSource,
        clock: Clock,
        ids: IdGenerator,
        refresh_lifetime: timedelta,
    ) -> None:
        self._uow = uow
        self._tokens = tokens
        self._secrets = secrets
        self._clock = clock
        self._ids = ids
        self._refresh_lifetime = refresh_lifetime

    def start(self, user: User) -> Session:
        """A new session: a new refresh-token family, stored in a unit of its own."""
        record, secret = self.refresh_token(user.id, self._ids.new_id("rtf"), self._clock.now())
        with self._uow() as uow:
            uow.refresh_tokens.add(record)
            uow.commit()
        return self.session(user, secret)

    def refresh_token(
        self, user_id: str, family_id: str, now: datetime
    ) -> tuple[RefreshTokenRecord, str]:
        """A new refresh token of ``family_id``: the record to store and the secret to hand out."""
        secret = self._secrets.new_secret()
        record = RefreshTokenRecord(
            id=self._ids.new_id("rt"),
            user_id=user_id,
            family_id=family_id,
            token_hash=hash_refresh_token(secret),
            created_at=now,
            expires_at=now + self._refresh_lifetime,
        )
        return record, secret

    def session(self, user: User, refresh: str) -> Session:
        access = self._tokens.issue(user.id, user.role, self._clock.now())
        return Session(
            user=user,
            access_token=access,
            refresh_token=refresh,
            expires_in=self._tokens.lifetime_seconds,
        )


class RefreshSession:
    """Rotate a refresh token: the old one stops working; one that comes back ends the family."""

    def __init__(
        self, *, uow: GatewayUnitOfWorkFactory, sessions: SessionIssuer, clock: Clock
    ) -> None:
        self._uow = uow
        self._sessions = sessions
        self._clock = clock

    def __call__(self, refresh_token: str) -> Session:
        now = self._clock.now()
        with self._uow() as uow:
            record = uow.refresh_tokens.get_by_hash(hash_refresh_token(refresh_token))
            if record is None:
                raise InvalidRefreshToken("unknown refresh token")
            if record.revoked_at is not None:
                raise InvalidRefreshToken("refresh token revoked")
            if record.used_at is not None or not uow.refresh_tokens.mark_used(record.id, now):
                # A rotated token came back: someone holds a copy. End the whole family.
                uow.refresh_tokens.revoke_family(record.family_id, now)
                uow.commit()
                raise RefreshTokenReused("refresh token already used; session revoked")
            if record.expires_at <= now:
                uow.commit()
                raise InvalidRefreshToken("refresh token expired")
            user = uow.users.get(record.user_id)
            if user is None:
                raise InvalidRefreshToken("unknown user")
            successor, secret = self._sessions.refresh_token(user.id, record.family_id, now)
            uow.refresh_tokens.add(successor)
            uow.commit()
        return self._sessions.session(user, secret)


class LogOut:
    """Revoke the session the token belongs to; unknown tokens are ignored (idempotent)."""

    def __init__(self, *, uow: GatewayUnitOfWorkFactory, clock: Clock) -> None:
        self._uow = uow
        self._clock = clock

    def __call__(self, refresh_token: str) -> None:
        with self._uow() as uow:
            record = uow.refresh_tokens.get_by_hash(hash_refresh_token(refresh_token))
            if record is not None:
                uow.refresh_tokens.revoke_family(record.family_id, self._clock.now())
                uow.commit()


class Authenticate:
    """Who an access token says the caller is; raises InvalidAccessToken otherwise."""

    def __init__(self, *, tokens: AccessTokenIssuer, clock: Clock) -> None:
        self._tokens = tokens
        self._clock = clock

    def __call__(self, access_token: str) -> AccessClaims:
        return self._tokens.verify(access_token, self._clock.now())

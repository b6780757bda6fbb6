"""Authentication and profile use cases."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from atelier_gateway.application.ports import (
    AccessClaims,
    AccessTokenIssuer,
    BillingAccounts,
    GatewayUnitOfWorkFactory,
    PasswordHasher,
    SecretSource,
)
from atelier_gateway.domain import model
from atelier_gateway.domain.errors import (
    InvalidCredentials,
    InvalidRefreshToken,
    RefreshTokenReused,
    UserNotFound,
)
from atelier_gateway.domain.model import RefreshTokenRecord, Role, User
from atelier_ports.clock import Clock
from atelier_ports.ids import IdGenerator
from atelier_ports.problems import InvalidArgument, Unavailable


@dataclass(frozen=True, slots=True)
class SignUp:
    email: str
    password: str
    name: str = ""


@dataclass(frozen=True, slots=True)
class ProfileChanges:
    """Only fields present in the request are changed (``UNSET`` means "leave as is")."""

    name: str | None = None
    avatar_url: str | None = None
    avatar_url_set: bool = False
    preferences: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Session:
    user: User
    access_token: str
    refresh_token: str
    expires_in: int


log = logging.getLogger("atelier.gateway")


def hash_refresh_token(token: str) -> str:
    # Refresh tokens are 256-bit random secrets: a fast hash is enough (no dictionary to try).
    return hashlib.sha256(token.encode()).hexdigest()


class AuthService:
    def __init__(
        self,
        uow: GatewayUnitOfWorkFactory,
        hasher: PasswordHasher,
        tokens: AccessTokenIssuer,
        secrets: SecretSource,
        billing: BillingAccounts,
        clock: Clock,
        ids: IdGenerator,
        refresh_lifetime: timedelta = timedelta(days=30),
    ) -> None:
        self._uow = uow
        self._hasher = hasher
        self._tokens = tokens
        self._secrets = secrets
        self._billing = billing
        self._clock = clock
        self._ids = ids
        self._refresh_lifetime = refresh_lifetime
        # Verified against when the email is unknown, so both answers take the same time.
        self._dummy_hash = hasher.hash("not-a-real-password-" + secrets.new_secret())

    # --- sign-up and log-in -------------------------------------------------------------

    def sign_up(self, cmd: SignUp) -> Session:
        email = model.normalise_email(cmd.email)
        model.check_password(cmd.password)
        name = model.check_name(cmd.name)
        password_hash = self._hasher.hash(cmd.password)
        user = User(
            id=self._ids.new_id("usr"),
            email=email,
            password_hash=password_hash,
            role=Role.USER,
            created_at=self._clock.now(),
            name=name,
        )
        with self._uow() as uow:
            uow.users.add(user)  # raises EmailTaken
            uow.commit()
        self._ensure_billing(user)
        return self._start_session(user)

    def log_in(self, email: str, password: str) -> Session:
        try:
            normalised = model.normalise_email(email)
        except InvalidArgument:
            normalised = ""
        with self._uow() as uow:
            user = uow.users.get_by_email(normalised) if normalised else None
        if user is None or user.password_hash is None:
            self._hasher.verify(self._dummy_hash, password)
            raise InvalidCredentials("wrong email or password")
        if not self._hasher.verify(user.password_hash, password):
            raise InvalidCredentials("wrong email or password")
        if self._hasher.needs_rehash(user.password_hash):
            with self._uow() as uow:
                fresh = uow.users.get(user.id)
                if fresh is not None:
                    fresh.password_hash = self._hasher.hash(password)
                    uow.users.save(fresh)
                    uow.commit()
        self._ensure_billing(user)
        return self._start_session(user)

    def _ensure_billing(self, user: User) -> None:
        """Set up the billing account once; a failed attempt is retried at the next log-in."""
        if user.billing_ready:
            return
        self._billing.set_up_account(user.id, user.email, user.name or None)
        with self._uow() as uow:
            fresh = uow.users.get(user.id)
            if fresh is not None and not fresh.billing_ready:
                fresh.billing_ready = True
                uow.users.save(fresh)
                uow.commit()
        user.billing_ready = True

    def _start_session(self, user: User) -> Session:
        family_id = self._ids.new_id("rtf")
        refresh = self._new_refresh_token(user.id, family_id)
        return self._session(user, refresh)

    def _new_refresh_token(self, user_id: str, family_id: str) -> str:
        secret = self._secrets.new_secret()
        now = self._clock.now()
        record = RefreshTokenRecord(
            id=self._ids.new_id("rt"),
            user_id=user_id,
            family_id=family_id,
            token_hash=hash_refresh_token(secret),
            created_at=now,
            expires_at=now + self._refresh_lifetime,
        )
        with self._uow() as uow:
            uow.refresh_tokens.add(record)
            uow.commit()
        return secret

    def _session(self, user: User, refresh: str) -> Session:
        access = self._tokens.issue(user.id, user.role, self._clock.now())
        return Session(
            user=user,
            access_token=access,
            refresh_token=refresh,
            expires_in=self._tokens.lifetime_seconds,
        )

    # --- refresh tokens -----------------------------------------------------------------

    def refresh(self, refresh_token: str) -> Session:
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
            secret = self._secrets.new_secret()
            uow.refresh_tokens.add(
                RefreshTokenRecord(
                    id=self._ids.new_id("rt"),
                    user_id=user.id,
                    family_id=record.family_id,
                    token_hash=hash_refresh_token(secret),
                    created_at=now,
                    expires_at=now + self._refresh_lifetime,
                )
            )
            uow.commit()
        return self._session(user, secret)

    def log_out(self, refresh_token: str) -> None:
        """Revoke the session the token belongs to; unknown tokens are ignored (idempotent)."""
        now = self._clock.now()
        with self._uow() as uow:
            record = uow.refresh_tokens.get_by_hash(hash_refresh_token(refresh_token))
            if record is not None:
                uow.refresh_tokens.revoke_family(record.family_id, now)
                uow.commit()

    def authenticate(self, access_token: str) -> AccessClaims:
        return self._tokens.verify(access_token, self._clock.now())

    # --- profile and roles --------------------------------------------------------------

    def profile(self, user_id: str) -> User:
        with self._uow() as uow:
            user = uow.users.get(user_id)
        if user is None:
            raise UserNotFound("user not found")
        return user

    def update_profile(self, user_id: str, changes: ProfileChanges) -> User:
        name = model.check_name(changes.name) if changes.name is not None else None
        avatar = model.check_avatar_url(changes.avatar_url) if changes.avatar_url_set else None
        prefs = None
        if changes.preferences is not None:
            size = len(json.dumps(changes.preferences, separators=(",", ":")).encode())
            prefs = model.check_preferences(changes.preferences, size)
        with self._uow() as uow:
            user = uow.users.get(user_id)
            if user is None:
                raise UserNotFound("user not found")
            if name is not None:
                user.name = name
            if changes.avatar_url_set:
                user.avatar_url = avatar
            if prefs is not None:
                user.preferences = prefs
            uow.users.save(user)
            uow.commit()
        if name is not None:
            try:
                self._billing.update_contact(user_id, None, name)
            except Unavailable:
                # The profile is ours and is saved; the provider's copy catches up at the next
                # edit. Logged so an operator sees the drift.
                log.warning(
                    "could not push the profile to billing", extra={"fields": {"user": user_id}}
                )
        return user

    def promote_admin(self, email: str) -> User:
        with self._uow() as uow:
            user = uow.users.get_by_email(model.normalise_email(email))
            if user is None:
                raise UserNotFound(f"no user with email {email}")
            user.role = Role.ADMIN
            uow.users.save(user)
            uow.commit()
        return user

    def search_users(self, query: str, limit: int, offset: int) -> list[User]:
        with self._uow() as uow:
            return uow.users.search(query.strip().lower(), limit, offset)

"""Accounts: signing up and logging in (each also sets up the billing account once)."""

from __future__ import annotations

from dataclasses import dataclass

from atelier_gateway.application.ports import (
    BillingAccounts,
    GatewayUnitOfWorkFactory,
    PasswordHasher,
    SecretSource,
)
from atelier_gateway.application.sessions import Session, SessionIssuer
from atelier_gateway.domain import model
from atelier_gateway.domain.errors import InvalidCredentials
from atelier_gateway.domain.model import Role, User
from atelier_ports.clock import Clock
from atelier_ports.ids import IdGenerator
from atelier_ports.problems import InvalidArgument


@dataclass(frozen=True, slots=True)
class NewAccount:
    email: str
    password: str
    name: str = ""


@dataclass(frozen=True, slots=True)
class Credentials:
    email: str
    password: str


class BillingAccountSetUp:
    """Set up the user's billing account once; a failed attempt is retried at the next log-in."""

    def __init__(self, *, uow: GatewayUnitOfWorkFactory, billing: BillingAccounts) -> None:
        self._uow = uow
        self._billing = billing

    def __call__(self, user: User) -> None:
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


class SignUp:
    def __init__(
        self,
        *,
        uow: GatewayUnitOfWorkFactory,
        hasher: PasswordHasher,
        billing_set_up: BillingAccountSetUp,
        sessions: SessionIssuer,
        clock: Clock,
        ids: IdGenerator,
    ) -> None:
        self._uow = uow
        self._hasher = hasher
        self._billing_set_up = billing_set_up
        self._sessions = sessions
        self._clock = clock
        self._ids = ids

    def __call__(self, cmd: NewAccount) -> Session:
        email = model.normalise_email(cmd.email)
        model.check_password(cmd.password)
        name = model.check_name(cmd.name)
        user = User(
            id=self._ids.new_id("usr"),
            email=email,
            password_hash=self._hasher.hash(cmd.password),
            role=Role.USER,
            created_at=self._clock.now(),
            name=name,
        )
        with self._uow() as uow:
            uow.users.add(user)  # raises EmailTaken
            uow.commit()
        self._billing_set_up(user)
        return self._sessions.start(user)


class LogIn:
    def __init__(
        self,
        *,
        uow: GatewayUnitOfWorkFactory,
        hasher: PasswordHasher,
        secrets: SecretSource,
        billing_set_up: BillingAccountSetUp,
        sessions: SessionIssuer,
    ) -> None:
        self._uow = uow
        self._hasher = hasher
        self._billing_set_up = billing_set_up
        self._sessions = sessions
        # Verified against when the email is unknown, so both answers take the same time.
        self._dummy_hash = hasher.hash("not-a-real-password-" + secrets.new_secret())

    def __call__(self, cmd: Credentials) -> Session:
        try:
            email = model.normalise_email(cmd.email)
        except InvalidArgument:
            email = ""
        with self._uow() as uow:
            user = uow.users.get_by_email(email) if email else None
        if user is None or user.password_hash is None:
            self._hasher.verify(self._dummy_hash, cmd.password)
            raise InvalidCredentials("wrong email or password")
        if not self._hasher.verify(user.password_hash, cmd.password):
            raise InvalidCredentials("wrong email or password")
        if self._hasher.needs_rehash(user.password_hash):
            with self._uow() as uow:
                fresh = uow.users.get(user.id)
                if fresh is not None:
                    fresh.password_hash = self._hasher.hash(cmd.password)
                    uow.users.save(fresh)
                    uow.commit()
        self._billing_set_up(user)
        return self._sessions.start(user)

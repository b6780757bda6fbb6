"""Ports of the gateway core, implemented by adapters and wired in ``bootstrap``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from atelier_gateway.application import billing_views as billing
from atelier_gateway.application import task_views as tasks
from atelier_gateway.application.calls import (
    Caller,
    Notification,
    NotificationReceipt,
    Page,
    PageRequest,
)
from atelier_gateway.domain.model import IdempotencyRecord, RefreshTokenRecord, Role, User
from atelier_gateway.domain.sms import SendWindow, SmsChallenge
from atelier_ports.unit_of_work import UnitOfWork


class UserRepository(Protocol):
    def add(self, user: User) -> None:
        """Insert; raises EmailTaken if the email is already registered."""
        ...

    def get(self, user_id: str) -> User | None: ...

    def get_by_email(self, email: str) -> User | None: ...

    def get_by_phone(self, phone: str) -> User | None:
        """The user with this E.164 phone number (``add`` raises PhoneTaken for a taken one)."""
        ...

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


class SmsChallengeRepository(Protocol):
    """Challenges and send windows are read FOR UPDATE: whoever holds one decides alone."""

    def lock(self, phone: str) -> SmsChallenge:
        """The phone's challenge, locked until the transaction ends (made empty if none)."""
        ...

    def get_locked(self, phone: str) -> SmsChallenge | None:
        """The phone's challenge, locked until the transaction ends; None if none was made."""
        ...

    def save(self, challenge: SmsChallenge) -> None: ...

    def lock_window(self, address: str) -> SendWindow:
        """The address's send window, locked until the transaction ends (made empty if none)."""
        ...

    def save_window(self, window: SendWindow) -> None: ...


class GatewayUnitOfWork(UnitOfWork, Protocol):
    """One transaction: it begins on ``__enter__`` and ends on ``commit()``, ``rollback()`` or
    ``__exit__`` (rolled back unless committed). ``commit()`` does not start another one: a unit
    is used for one transaction, and no use case opens a unit inside another."""

    # Read-only members, so an implementation may hold its own repository types.
    @property
    def users(self) -> UserRepository: ...

    @property
    def refresh_tokens(self) -> RefreshTokenRepository: ...

    @property
    def idempotency(self) -> IdempotencyRepository: ...

    @property
    def sms_challenges(self) -> SmsChallengeRepository: ...


class GatewayUnitOfWorkFactory(Protocol):
    def __call__(self, *, one_statement: bool = False) -> GatewayUnitOfWork:
        """A unit for one use case call. A ``one_statement`` unit makes at most one change, in
        one statement (an Idempotency-Key claim, say): atomic by itself, so on PostgreSQL it
        needs no transaction around it (no BEGIN/COMMIT round trips); its reads each see what
        was committed when they ran."""
        ...


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


class OneTimeCodes(Protocol):
    def new_code(self) -> str:
        """A fresh SMS log-in code: ``CODE_DIGITS`` decimal digits from a CSPRNG."""
        ...


class PhoneNumbers(Protocol):
    def normalise(self, raw: str) -> str:
        """``raw`` as E.164 (``+8613800138000``); a number without a country code is read in
        the default region. Raises ``InvalidArgument`` (field ``phone``) for anything that is
        not a valid phone number."""
        ...


class Sms(Protocol):
    def send_code(self, phone: str, code: str, minutes_valid: int) -> None:
        """Send the log-in ``code`` to ``phone`` (E.164), saying how many minutes it is valid.

        Raises ``SmsNotDelivered`` when the provider cannot be reached or refuses (credentials,
        template), ``SmsRateLimited`` when the provider's own limit for the number is reached and
        ``InvalidArgument`` (field ``phone``) when it refuses the number."""
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


# --- billing and tasks, as the HTTP API uses them -----------------------------------------------
#
# Implemented over gRPC by ``adapters.grpc_billing`` / ``adapters.grpc_tasks`` (the only modules
# that import generated code). A refusal or failure of the owning service is raised as
# ``atelier_common.grpc_client.RemoteCallError`` (status + ErrorInfo reason), which the HTTP
# problem table translates once.


class BillingGateway(Protocol):
    async def get_balance(self, caller: Caller) -> billing.Balance: ...

    async def list_ledger(self, caller: Caller, page: PageRequest) -> Page[billing.LedgerEntry]: ...

    async def get_catalog(self, caller: Caller) -> billing.Catalog: ...

    async def create_order(
        self, caller: Caller, order: billing.NewOrder, request_id: str | None
    ) -> billing.Order: ...

    async def list_orders(self, caller: Caller, page: PageRequest) -> Page[billing.Order]: ...

    async def get_order(self, caller: Caller, order_id: str) -> billing.Order: ...

    async def refresh_order(self, caller: Caller, order_id: str) -> billing.Order:
        """Ask the payment provider about the order's payment (the "I have paid" button)."""
        ...

    async def refund_order(self, caller: Caller, order_id: str, reason: str) -> billing.Order:
        """Admin: refund any user's paid order through its provider (billing checks the role)."""
        ...

    async def get_account(
        self, caller: Caller, user_id: str, recent_orders: int
    ) -> billing.Account:
        """Admin: another user's balance and newest orders (billing checks the role)."""
        ...

    async def list_account_activity(
        self, caller: Caller, user_id: str, page: PageRequest
    ) -> Page[billing.AccountActivity]:
        """Admin: a user's ledger entries, payments and refunds, newest first by (time, id)."""
        ...

    async def adjust_credits(
        self, caller: Caller, user_id: str, amount: int, reason: str, request_id: str
    ) -> billing.Balance:
        """Admin: grant (positive) or take back (negative) credits, once per request_id."""
        ...

    async def complete_sandbox_checkout(
        self, caller: Caller, order_id: str, outcome: billing.SandboxOutcome
    ) -> None: ...

    async def handle_payment_notification(
        self, caller: Caller, notification: Notification
    ) -> NotificationReceipt: ...

    async def healthy(self) -> bool: ...

    async def close(self) -> None: ...


class TasksGateway(Protocol):
    async def create_upload(
        self, caller: Caller, upload: tasks.NewUpload
    ) -> tasks.UploadTarget: ...

    async def create_task(
        self, caller: Caller, task: tasks.NewTask, request_id: str | None
    ) -> tasks.Task: ...

    async def list_tasks(
        self, caller: Caller, page: PageRequest, where: tasks.TaskFilter
    ) -> Page[tasks.Task]: ...

    async def list_all_tasks(
        self, caller: Caller, page: PageRequest, where: tasks.TaskFilter
    ) -> Page[tasks.Task]:
        """Every user's tasks, or ``where.user_id``'s (administrators); the page carries
        ``item_page_tokens``."""
        ...

    async def get_task(self, caller: Caller, task_id: str) -> tasks.Task: ...

    async def cancel_task(self, caller: Caller, task_id: str) -> tasks.Task: ...

    def watch_task(
        self, caller: Caller, task_id: str, after_sequence: int, max_seconds: float
    ) -> AsyncIterator[tasks.TaskEvent]:
        """The task's status events after ``after_sequence``; ends after the terminal one."""
        ...

    def task_changes(self, idle_seconds: float) -> AsyncIterator[tasks.TaskChange | None]:
        """Every task's changes (the tasks service's change feed, no end user): None first,
        once subscribed (every change committed after it follows), then the changes. Raises
        when the feed broke (changes may have been missed), or when the service went silent
        for ``idle_seconds`` (it sends heartbeats more often than that)."""
        ...

    async def list_images(
        self, caller: Caller, page: PageRequest, task_type: tasks.TaskType | None
    ) -> Page[tasks.Image]: ...

    async def get_user_stats(self, caller: Caller) -> tasks.UserStats: ...

    async def handle_provider_notification(
        self, caller: Caller, notification: Notification
    ) -> NotificationReceipt: ...

    async def list_moderation_decisions(
        self, caller: Caller, page: PageRequest, where: tasks.DecisionFilter
    ) -> Page[tasks.ModerationDecision]:
        """Admin only; newest first, with per-item page tokens (the timeline merges them)."""
        ...

    async def overturn_moderation_decision(
        self, caller: Caller, decision_id: str
    ) -> tasks.ModerationDecision:
        """Admin only: overturn a rejection (a task it failed is re-run at no charge)."""
        ...

    async def healthy(self) -> bool: ...

    async def close(self) -> None: ...


class ImageSource(Protocol):
    """The bytes of a stored result image, from the short-lived signed URL the tasks service
    gave for it (``Image.url``): the gateway never reads another service's database, and
    reaches storage only through the links tasks signs."""

    def chunks(self, url: str) -> AsyncIterator[bytes]:
        """The image's bytes, in pieces. Raises ``atelier_ports.problems.Unavailable`` when the
        storage cannot be reached or refuses the link."""
        ...

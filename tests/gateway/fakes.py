"""In-memory fakes of the gateway's ports (they implement the real Protocols; ``_conforms`` at
the end lets mypy prove it)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self

from atelier_common.grpc_client import RemoteCallError

from atelier_gateway.application import billing_views as bv
from atelier_gateway.application import task_views as tv
from atelier_gateway.application.calls import (
    Caller,
    Notification,
    NotificationReceipt,
    Page,
    PageRequest,
)
from atelier_gateway.application.ports import (
    AccessClaims,
    AccessTokenIssuer,
    BillingAccounts,
    BillingGateway,
    GatewayUnitOfWorkFactory,
    OneTimeCodes,
    PasswordHasher,
    PhoneNumbers,
    SecretSource,
    Sms,
    TasksGateway,
)
from atelier_gateway.domain.errors import EmailTaken, InvalidAccessToken, PhoneTaken
from atelier_gateway.domain.model import IdempotencyRecord, RefreshTokenRecord, Role, User
from atelier_gateway.domain.sms import SendWindow, SmsChallenge
from atelier_ports.problems import DomainError, InvalidArgument, Unavailable


class FakeUsers:
    def __init__(self) -> None:
        self.rows: dict[str, User] = {}

    def add(self, user: User) -> None:
        if user.phone is not None and any(u.phone == user.phone for u in self.rows.values()):
            raise PhoneTaken("taken")
        if user.email is not None and any(u.email == user.email for u in self.rows.values()):
            raise EmailTaken("taken")
        self.rows[user.id] = replace(user)

    def get(self, user_id: str) -> User | None:
        u = self.rows.get(user_id)
        return replace(u) if u else None

    def get_by_email(self, email: str) -> User | None:
        return next((replace(u) for u in self.rows.values() if u.email == email), None)

    def get_by_phone(self, phone: str) -> User | None:
        return next((replace(u) for u in self.rows.values() if u.phone == phone), None)

    def save(self, user: User) -> None:
        self.rows[user.id] = replace(user)

    def search(self, query: str, limit: int, offset: int) -> list[User]:
        found = [
            u for u in self.rows.values() if query in (u.email or "") or query in (u.phone or "")
        ]
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


class FakeSmsChallenges:
    def __init__(self) -> None:
        self.rows: dict[str, SmsChallenge] = {}
        self.windows: dict[str, SendWindow] = {}

    def lock(self, phone: str) -> SmsChallenge:
        return replace(self.rows.setdefault(phone, SmsChallenge(phone=phone)))

    def get_locked(self, phone: str) -> SmsChallenge | None:
        found = self.rows.get(phone)
        return replace(found) if found else None

    def save(self, challenge: SmsChallenge) -> None:
        self.rows[challenge.phone] = replace(challenge)

    def lock_window(self, address: str) -> SendWindow:
        return replace(self.windows.setdefault(address, SendWindow(address=address)))

    def save_window(self, window: SendWindow) -> None:
        self.windows[window.address] = replace(window)


class FakeGatewayUnitOfWork:
    """The ``GatewayUnitOfWork`` port in memory. Its repositories are the "database", shared by
    every unit it makes (``uow()`` returns itself); a unit left without ``commit()`` puts the
    rows back as they were when it began, as the real one rolls back."""

    def __init__(self) -> None:
        self.users = FakeUsers()
        self.refresh_tokens = FakeRefreshTokens()
        self.idempotency = FakeIdempotency()
        self.sms_challenges = FakeSmsChallenges()
        self.commits = 0
        self.rollbacks = 0
        self._snapshot: tuple[dict[Any, Any], ...] | None = None

    def __call__(self, *, one_statement: bool = False) -> Self:
        return self

    def __enter__(self) -> Self:
        assert self._snapshot is None, "a unit of work opened inside another"
        self._snapshot = (
            dict(self.users.rows),
            dict(self.refresh_tokens.rows),
            dict(self.idempotency.rows),
            dict(self.sms_challenges.rows),
            dict(self.sms_challenges.windows),
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
        users, tokens, keys, challenges, windows = self._snapshot
        self.users.rows, self.refresh_tokens.rows, self.idempotency.rows = (
            dict(users),
            dict(tokens),
            dict(keys),
        )
        self.sms_challenges.rows = dict(challenges)
        self.sms_challenges.windows = dict(windows)
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


class FakeSms:
    """The ``Sms`` port without a provider: records each message; set ``error`` to refuse."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, int]] = []
        self.error: DomainError | None = None

    def send_code(self, phone: str, code: str, minutes_valid: int) -> None:
        if self.error is not None:
            raise self.error
        self.sent.append((phone, code, minutes_valid))

    def last_code(self, phone: str) -> str:
        return next(code for to, code, _ in reversed(self.sent) if to == phone)


class FakeCodes:
    """``OneTimeCodes`` that hands out ``123456``, ``123457``, … (or ``next_codes`` first)."""

    def __init__(self) -> None:
        self._n = itertools.count(123456)
        self.next_codes: list[str] = []

    def new_code(self) -> str:
        if self.next_codes:
            return self.next_codes.pop(0)
        return f"{next(self._n) % 1_000_000:06d}"


class FakePhoneNumbers:
    """``PhoneNumbers`` for unit tests: ``+`` and 8-15 digits, or 11 digits read as +86."""

    def normalise(self, raw: str) -> str:
        digits = raw.replace(" ", "").replace("-", "")
        if digits.isdigit() and len(digits) == 11:
            return "+86" + digits
        if digits.startswith("+") and digits[1:].isdigit() and 8 <= len(digits) - 1 <= 15:
            return digits
        raise InvalidArgument("not a valid phone number", field="phone")


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


class FakeBillingGateway:
    """The ``BillingGateway`` port without billing: canned answers, every call recorded; set
    ``error`` to make the next calls fail as billing would."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Caller]] = []
        self.error: RemoteCallError | None = None
        self.orders: dict[str, bv.Order] = {}
        self.balance = bv.Balance(available=100, held=0, membership=None, grants=())
        self.adjustments: list[tuple[str, int, str, str]] = []

    def _called(self, name: str, caller: Caller) -> None:
        self.calls.append((name, caller))
        if self.error is not None:
            raise self.error

    async def get_balance(self, caller: Caller) -> bv.Balance:
        self._called("get_balance", caller)
        return self.balance

    async def list_ledger(self, caller: Caller, page: PageRequest) -> Page[bv.LedgerEntry]:
        self._called("list_ledger", caller)
        return Page(items=(), next_page_token="")

    async def get_catalog(self, caller: Caller) -> bv.Catalog:
        self._called("get_catalog", caller)
        return bv.Catalog(market="local", items=(), channels=("local",))

    async def create_order(
        self, caller: Caller, order: bv.NewOrder, request_id: str | None
    ) -> bv.Order:
        self._called("create_order", caller)
        created = bv.Order(
            id=f"ord_{len(self.orders) + 1}",
            number=f"{len(self.orders) + 1:08d}",
            status="pending",
            item_id=order.item_id,
            item_kind="pack",
            credits=100,
            amount=500,
            currency="USD",
            channel=order.channel,
            checkout=bv.Checkout(url=None, code_url=None, expires_at=None),
            provider_transaction_id=None,
            created_at=None,
            paid_at=None,
            failed_at=None,
            expired_at=None,
            refunded_at=None,
        )
        self.orders[created.id] = created
        return created

    async def list_orders(self, caller: Caller, page: PageRequest) -> Page[bv.Order]:
        self._called("list_orders", caller)
        return Page(items=tuple(self.orders.values()), next_page_token="")

    async def get_order(self, caller: Caller, order_id: str) -> bv.Order:
        self._called("get_order", caller)
        return self.orders[order_id]

    async def refresh_order(self, caller: Caller, order_id: str) -> bv.Order:
        self._called("refresh_order", caller)
        return self.orders[order_id]

    async def refund_order(self, caller: Caller, order_id: str, reason: str) -> bv.Order:
        self._called("refund_order", caller)
        return self.orders[order_id]

    async def get_account(self, caller: Caller, user_id: str, recent_orders: int) -> bv.Account:
        self._called("get_account", caller)
        return bv.Account(balance=self.balance, recent_orders=tuple(self.orders.values()))

    async def list_account_activity(
        self, caller: Caller, user_id: str, page: PageRequest
    ) -> Page[bv.AccountActivity]:
        self._called("list_account_activity", caller)
        return Page(items=(), next_page_token="")

    async def adjust_credits(
        self, caller: Caller, user_id: str, amount: int, reason: str, request_id: str
    ) -> bv.Balance:
        self._called("adjust_credits", caller)
        self.adjustments.append((user_id, amount, reason, request_id))
        self.balance = replace(self.balance, available=self.balance.available + amount)
        return self.balance

    async def complete_sandbox_checkout(
        self, caller: Caller, order_id: str, outcome: bv.SandboxOutcome
    ) -> None:
        self._called("complete_sandbox_checkout", caller)

    async def handle_payment_notification(
        self, caller: Caller, notification: Notification
    ) -> NotificationReceipt:
        self._called("handle_payment_notification", caller)
        return NotificationReceipt(applied=True, event_id="evt_1")

    async def healthy(self) -> bool:
        return self.error is None

    async def close(self) -> None:
        return None


class FakeTasksGateway:
    """The ``TasksGateway`` port without the tasks service: ``events`` is what ``watch_task``
    streams (then ``stream_error``, if set); every call recorded."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Caller]] = []
        self.tasks: dict[str, tv.Task] = {}
        self.decisions: dict[str, tv.ModerationDecision] = {}
        self.events: list[tv.TaskEvent] = []
        self.stream_error: RemoteCallError | None = None

    async def create_upload(self, caller: Caller, upload: tv.NewUpload) -> tv.UploadTarget:
        self.calls.append(("create_upload", caller))
        return tv.UploadTarget(
            key="up_1",
            method="PUT",
            url="http://storage.invalid/up_1",
            fields={},
            headers={"Content-Type": upload.content_type},
            expires_at=None,
            max_size=upload.size,
            content_types=(upload.content_type,),
        )

    async def create_task(
        self, caller: Caller, task: tv.NewTask, request_id: str | None
    ) -> tv.Task:
        self.calls.append(("create_task", caller))
        created = tv.Task(
            id=f"tsk_{len(self.tasks) + 1}",
            type=task.type,
            status="pending",
            params=dict(task.params),
            input_upload_ids=(task.input_upload_id,) if task.input_upload_id else (),
            cost=1,
            attempts=0,
            error=None,
            error_message=None,
            images=(),
            created_at=None,
            updated_at=None,
            started_at=None,
            finished_at=None,
            deadline_at=None,
        )
        self.tasks[created.id] = created
        return created

    async def list_tasks(
        self, caller: Caller, page: PageRequest, where: tv.TaskFilter
    ) -> Page[tv.Task]:
        self.calls.append(("list_tasks", caller))
        return Page(items=tuple(self.tasks.values()), next_page_token="")

    async def list_all_tasks(
        self, caller: Caller, page: PageRequest, where: tv.TaskFilter
    ) -> Page[tv.Task]:
        self.calls.append(("list_all_tasks", caller))
        items = tuple(
            t for t in self.tasks.values() if where.user_id is None or t.user_id == where.user_id
        )
        return Page(items, "", tuple(f"after:{t.id}" for t in items))

    async def get_task(self, caller: Caller, task_id: str) -> tv.Task:
        self.calls.append(("get_task", caller))
        return self.tasks[task_id]

    async def cancel_task(self, caller: Caller, task_id: str) -> tv.Task:
        self.calls.append(("cancel_task", caller))
        return self.tasks[task_id]

    async def watch_task(
        self, caller: Caller, task_id: str, after_sequence: int, max_seconds: float
    ) -> AsyncIterator[tv.TaskEvent]:
        self.calls.append(("watch_task", caller))
        for event in self.events:
            if event.task_id == task_id and event.sequence > after_sequence:
                yield event
        if self.stream_error is not None:
            raise self.stream_error

    async def task_changes(self, idle_seconds: float) -> AsyncIterator[tv.TaskChange | None]:
        # Never subscribes: without the tasks service the gateway's task cache stays off.
        await asyncio.Event().wait()
        yield None

    async def list_images(
        self, caller: Caller, page: PageRequest, task_type: tv.TaskType | None
    ) -> Page[tv.Image]:
        self.calls.append(("list_images", caller))
        return Page(items=(), next_page_token="")

    async def get_user_stats(self, caller: Caller) -> tv.UserStats:
        self.calls.append(("get_user_stats", caller))
        return tv.UserStats(
            total_tasks=len(self.tasks), succeeded=0, failed=0, total_images=0, credits_spent=0
        )

    async def handle_provider_notification(
        self, caller: Caller, notification: Notification
    ) -> NotificationReceipt:
        self.calls.append(("handle_provider_notification", caller))
        return NotificationReceipt(applied=True)

    async def list_moderation_decisions(
        self, caller: Caller, page: PageRequest, where: tv.DecisionFilter
    ) -> Page[tv.ModerationDecision]:
        self.calls.append(("list_moderation_decisions", caller))
        items = tuple(
            d
            for d in self.decisions.values()
            if (where.user_id is None or d.user_id == where.user_id)
            and (where.verdict is None or d.verdict == where.verdict)
        )
        return Page(items, "", tuple(f"after:{d.id}" for d in items))

    async def overturn_moderation_decision(
        self, caller: Caller, decision_id: str
    ) -> tv.ModerationDecision:
        self.calls.append(("overturn_moderation_decision", caller))
        decision = replace(self.decisions[decision_id], overturned_by=caller.user_id)
        self.decisions[decision_id] = decision
        return decision

    async def healthy(self) -> bool:
        return True

    async def close(self) -> None:
        return None


def _conforms(
    uow: FakeGatewayUnitOfWork,
    hasher: FakePasswordHasher,
    tokens: FakeTokens,
    secrets: FakeSecrets,
    billing: FakeBillingAccounts,
    billing_gateway: FakeBillingGateway,
    tasks_gateway: FakeTasksGateway,
    sms: FakeSms,
    codes: FakeCodes,
    phones: FakePhoneNumbers,
) -> tuple[
    GatewayUnitOfWorkFactory,
    PasswordHasher,
    AccessTokenIssuer,
    SecretSource,
    BillingAccounts,
    BillingGateway,
    TasksGateway,
    Sms,
    OneTimeCodes,
    PhoneNumbers,
]:
    # mypy proves the fakes match their ports
    return uow, hasher, tokens, secrets, billing, billing_gateway, tasks_gateway, sms, codes, phones

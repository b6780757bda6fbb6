"""The admin console's reads of another user's account: the account (balance and recent orders)
and its activity — every ledger entry and every payment and refund of an order in one listing,
newest first.

The activity merges three keyset listings (ledger entries by (created_at, id); paid orders by
(paid_at, id); refunded orders by (refunded_at, id)) into one order: (time, kind, id) descending,
where kind orders "ledger" < "payment" < "refund" at the same instant. A page token is the
position of the last entry shown; every entry carries the token of its own position, so that a
caller merging this listing with another (the gateway's timeline) may stop anywhere in a page.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Literal

from atelier_billing.application.accounts import GetBalance, GetBalanceHandler
from atelier_billing.application.config import BillingConfig
from atelier_billing.application.inputs import page_size
from atelier_billing.application.ports import BillingUnitOfWorkFactory, LedgerLine
from atelier_billing.domain import errors
from atelier_billing.domain.model import Balance, LedgerEntry, LedgerKind, Order
from atelier_ports import problems
from atelier_ports.paging import InvalidPageToken, decode_page_token, encode_page_token

ACTIVITY_PAGE = "billing.activity"
ActivityKind = Literal["ledger", "payment", "refund"]
_KINDS: tuple[ActivityKind, ...] = ("ledger", "payment", "refund")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _admin(is_admin: bool, user_id: str) -> str:
    if not is_admin:
        raise errors.AdminOnly("reading another user's account needs the admin role")
    user_id = user_id.strip()
    if not user_id or len(user_id) > 64:
        raise problems.InvalidArgument("user_id must be 1-64 characters", field="user_id")
    return user_id


@dataclass(frozen=True, slots=True)
class GetAccount:
    caller_is_admin: bool
    user_id: str
    recent_orders: int


@dataclass(frozen=True, slots=True)
class Account:
    balance: Balance
    recent_orders: list[Order]


class GetAccountHandler:
    def __init__(
        self, uow: BillingUnitOfWorkFactory, balance: GetBalanceHandler, config: BillingConfig
    ) -> None:
        self._uow, self._balance, self._config = uow, balance, config

    def __call__(self, query: GetAccount) -> Account:
        user_id = _admin(query.caller_is_admin, query.user_id)
        if query.recent_orders < 0:
            raise problems.InvalidArgument(
                "recent_orders must not be negative", field="recent_orders"
            )
        size = page_size(query.recent_orders, self._config)
        balance = self._balance(GetBalance(user_id))
        with self._uow() as uow:
            orders = list(uow.orders.page(user_id, size, None))
        return Account(balance=balance, recent_orders=orders)


@dataclass(frozen=True, slots=True)
class ListAccountActivity:
    caller_is_admin: bool
    user_id: str
    page_size: int
    page_token: str


CauseKind = Literal["", "task", "order", "signup", "admin"]


@dataclass(frozen=True, slots=True)
class Activity:
    kind: ActivityKind
    at: datetime
    key: str  # the ledger entry's id (as text) or the order's id
    ledger_entry: LedgerEntry | None = None
    order: Order | None = None
    page_token: str = ""
    cause: CauseKind = ""  # what made it: a task (holds, captures, releases), an order, …
    cause_id: str = ""

    @property
    def id(self) -> str:
        return f"{self.kind}:{self.key}"


@dataclass(frozen=True, slots=True)
class ActivityPage:
    items: list[Activity]
    next_token: str


def _cause(line: LedgerLine) -> tuple[CauseKind, str]:
    """A hold's request id is its task's id; a grant's key names what it was granted for."""
    if line.hold_request_id:
        return "task", line.hold_request_id
    key = line.grant_key or ""
    prefix, _, rest = key.partition(":")
    if prefix == "order" and rest:
        return "order", rest
    if prefix == "signup":
        return "signup", ""
    if line.entry.kind is LedgerKind.ADJUST or prefix.startswith("adjust"):
        return "admin", ""
    return "", ""


def _activity(line: LedgerLine) -> Activity:
    e = line.entry
    cause, cause_id = _cause(line)
    return Activity("ledger", e.created_at, str(e.id), e, cause=cause, cause_id=cause_id)


def _micros(at: datetime) -> int:
    return (at.astimezone(UTC) - _EPOCH) // timedelta(microseconds=1)


def _sort_key(a: Activity) -> tuple[int, int, int, str]:
    # Ledger ids are integers: compare them as numbers, order ids as text.
    number = int(a.key) if a.kind == "ledger" else 0
    return (_micros(a.at), _KINDS.index(a.kind), number, a.key)


def _token(a: Activity) -> str:
    return encode_page_token(ACTIVITY_PAGE, _micros(a.at), a.kind, a.key)


def _position(token: str) -> tuple[datetime, ActivityKind, str]:
    micros, kind, key = decode_page_token(token, ACTIVITY_PAGE, (int, str, str))
    assert isinstance(micros, int) and isinstance(kind, str) and isinstance(key, str)
    if kind not in _KINDS or (kind == "ledger" and not key.isdigit()) or len(key) > 64:
        raise InvalidPageToken()
    try:
        at = _EPOCH + timedelta(microseconds=micros)
    except OverflowError:
        raise InvalidPageToken() from None
    return at, kind, key


class ListAccountActivityHandler:
    def __init__(self, uow: BillingUnitOfWorkFactory, config: BillingConfig) -> None:
        self._uow, self._config = uow, config

    def __call__(self, query: ListAccountActivity) -> ActivityPage:
        user_id = _admin(query.caller_is_admin, query.user_id)
        size = page_size(query.page_size, self._config)
        position = _position(query.page_token) if query.page_token else None
        ledger_before: tuple[datetime, int] | None = None
        paid_before: tuple[datetime, str | None] | None = None
        refunded_before: tuple[datetime, str | None] | None = None
        if position is not None:
            at, kind, key = position
            # Below the position in (time, kind, id) order, per listing: at the same instant a
            # listing of a smaller kind continues in full, one of a larger kind not at all.
            big_id = 2**63 - 1
            ledger_before = (at, int(key) if kind == "ledger" else big_id)
            paid_before = (at, key if kind == "payment" else ("" if kind == "ledger" else None))
            refunded_before = (at, key if kind == "refund" else "")
        with self._uow() as uow:
            entries: list[Activity] = [
                _activity(line)
                for line in uow.ledger.page_by_time(user_id, size + 1, ledger_before)
            ]
            entries += [
                Activity("payment", o.paid_at, o.id, order=o, cause="order", cause_id=o.id)
                for o in uow.orders.settled_page(user_id, size + 1, "paid", paid_before)
                if o.paid_at is not None
            ]
            entries += [
                Activity("refund", o.refunded_at, o.id, order=o, cause="order", cause_id=o.id)
                for o in uow.orders.settled_page(user_id, size + 1, "refunded", refunded_before)
                if o.refunded_at is not None
            ]
        entries.sort(key=_sort_key, reverse=True)
        more = len(entries) > size
        shown = [replace(a, page_token=_token(a)) for a in entries[:size]]
        return ActivityPage(items=shown, next_token=shown[-1].page_token if more else "")

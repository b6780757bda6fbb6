"""SQLAlchemy implementation of the billing unit of work.

Every write is one statement with its condition inside (``… WHERE remaining >= :n``) or an insert
guarded by a unique constraint; driver errors are translated at this boundary. The hot path (a
hold, a capture, a release) runs statements built once at import: on PostgreSQL one call of a
function created by migration 0003, on SQLite a few prepared steps under its one-writer lock.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

from atelier_common.db import SqlUnitOfWork as SqlUnitOfWorkBase
from sqlalchemy import (
    BigInteger,
    Connection,
    Engine,
    String,
    and_,
    bindparam,
    column,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.engine import Row
from sqlalchemy.exc import DBAPIError, IntegrityError

from atelier_billing.adapters.persistence.tables import (
    TS,
    accounts,
    grants,
    hold_allocations,
    holds,
    ledger_entries,
    memberships,
    orders,
    payment_customers,
    payment_events,
)
from atelier_billing.application import ports
from atelier_billing.application.ports import DuplicateKey, HoldOutcome, HoldWrite, LedgerLine
from atelier_billing.domain.errors import InsufficientCredits
from atelier_billing.domain.model import (
    Account,
    Allocation,
    Grant,
    GrantSource,
    Hold,
    HoldStatus,
    ItemKind,
    LedgerCheck,
    LedgerEntry,
    LedgerKind,
    Membership,
    MembershipStatus,
    NewLedgerEntry,
    Order,
    OrderStatus,
    allocate,
)


def _is_unique_violation(exc: IntegrityError) -> bool:
    text = str(exc.orig).lower()
    return "unique" in text or "duplicate key" in text


def _is_check_violation(exc: IntegrityError) -> bool:
    return "check" in str(exc.orig).lower()


class _Repo:
    def __init__(self, conn: Connection) -> None:
        self._c = conn

    def _insert(self, stmt: Any, savepoint: bool = False) -> None:
        """Insert; a unique violation becomes DuplicateKey. Without a savepoint the transaction
        is spoiled by the violation (callers then roll back, which is what they want)."""
        try:
            if savepoint:
                with self._c.begin_nested():
                    self._c.execute(stmt)
            else:
                self._c.execute(stmt)
        except IntegrityError as exc:
            if _is_unique_violation(exc):
                raise DuplicateKey(str(exc.orig)) from exc
            raise


def _account(row: Row[Any]) -> Account:
    return Account(row.user_id, row.available, row.held, row.created_at, row.email, row.name)


class SqlAccounts(_Repo):
    def create(self, user_id: str, now: datetime) -> bool:
        try:
            self._insert(
                insert(accounts).values(user_id=user_id, available=0, held=0, created_at=now),
                savepoint=True,
            )
        except DuplicateKey:
            return False
        return True

    def get(self, user_id: str) -> Account | None:
        row = self._c.execute(select(accounts).where(accounts.c.user_id == user_id)).first()
        return _account(row) if row else None

    def lock(self, user_id: str) -> Account | None:
        row = self._c.execute(
            select(accounts).where(accounts.c.user_id == user_id).with_for_update()
        ).first()
        return _account(row) if row else None

    def add_available(self, user_id: str, amount: int) -> int:
        row = self._c.execute(
            update(accounts)
            .where(accounts.c.user_id == user_id, accounts.c.available + amount >= 0)
            .values(available=accounts.c.available + amount)
            .returning(accounts.c.available)
        ).first()
        if row is None:
            raise InsufficientCredits("not enough credits available")
        return int(row.available)

    def user_ids(self) -> Sequence[str]:
        return list(
            self._c.execute(select(accounts.c.user_id).order_by(accounts.c.user_id)).scalars()
        )

    def set_contact(self, user_id: str, email: str | None, name: str | None) -> None:
        values = {k: v for k, v in (("email", email), ("name", name)) if v is not None}
        if values:
            self._c.execute(update(accounts).where(accounts.c.user_id == user_id).values(**values))


def _grant(row: Row[Any]) -> Grant:
    return Grant(
        id=row.id,
        user_id=row.user_id,
        source=GrantSource(row.source),
        amount=row.amount,
        remaining=row.remaining,
        expires_at=row.expires_at,
        created_at=row.created_at,
        reference=row.reference,
    )


class SqlGrants(_Repo):
    def add(self, grant: Grant, idempotency_key: str | None) -> None:
        self._insert(
            insert(grants).values(
                id=grant.id,
                user_id=grant.user_id,
                source=str(grant.source),
                amount=grant.amount,
                remaining=grant.remaining,
                expires_at=grant.expires_at,
                created_at=grant.created_at,
                reference=grant.reference[:200],
                idempotency_key=idempotency_key,
            )
        )

    def get(self, grant_id: str) -> Grant | None:
        row = self._c.execute(select(grants).where(grants.c.id == grant_id)).first()
        return _grant(row) if row else None

    def by_idempotency_key(self, key: str) -> Grant | None:
        row = self._c.execute(select(grants).where(grants.c.idempotency_key == key)).first()
        return _grant(row) if row else None

    def spendable(self, user_id: str, now: datetime) -> Sequence[Grant]:
        return [_grant(r) for r in self._c.execute(_SPENDABLE, {"b_user": user_id, "b_now": now})]

    def for_user(self, user_id: str) -> Sequence[Grant]:
        rows = self._c.execute(
            select(grants).where(grants.c.user_id == user_id).order_by(grants.c.created_at)
        )
        return [_grant(r) for r in rows]

    def take(self, grant_id: str, amount: int) -> bool:
        return self._c.execute(_TAKE, {"b_grant": grant_id, "b_n": amount}).rowcount == 1

    def _due(self, now: datetime) -> Any:
        return and_(
            grants.c.remaining > 0, grants.c.expires_at.is_not(None), grants.c.expires_at <= now
        )

    def due_for_expiry(self, now: datetime, user_id: str | None = None) -> Sequence[Grant]:
        stmt = select(grants).where(self._due(now))
        if user_id is not None:
            stmt = stmt.where(grants.c.user_id == user_id)
        return [_grant(r) for r in self._c.execute(stmt)]

    def expire(self, grant_id: str, now: datetime) -> int:
        # Right-hand sides see the old row, so expired_amount takes what remained. A grant
        # expires once: give_back refuses grants with expired_at set.
        row = self._c.execute(
            update(grants)
            .where(grants.c.id == grant_id, grants.c.remaining > 0, grants.c.expired_at.is_(None))
            .values(expired_amount=grants.c.remaining, remaining=0, expired_at=now)
            .returning(grants.c.expired_amount)
        ).first()
        return int(row.expired_amount) if row else 0

    def users_with_due_grants(self, now: datetime) -> Sequence[str]:
        return list(
            self._c.execute(select(grants.c.user_id).where(self._due(now)).distinct()).scalars()
        )


# The hold's statements, built once (SQLAlchemy caches their compiled form; nothing is rebuilt per
# call). Bind names start with b_: UPDATE reserves the names of the table's columns.
_SPENDABLE = select(grants).where(
    grants.c.user_id == bindparam("b_user"),
    grants.c.remaining > 0,
    or_(grants.c.expires_at.is_(None), grants.c.expires_at > bindparam("b_now", type_=TS)),
)
_TAKE = (
    update(grants)
    .where(grants.c.id == bindparam("b_grant"), grants.c.remaining >= bindparam("b_n"))
    .values(remaining=grants.c.remaining - bindparam("b_n"))
)
_LOCK_ACCOUNT = (
    select(accounts.c.available).where(accounts.c.user_id == bindparam("b_user")).with_for_update()
)
_HOLD_BY_REQUEST = select(holds).where(
    holds.c.user_id == bindparam("b_user"), holds.c.request_id == bindparam("b_request")
)
# A hold's allocations in the domain's spending order, with what a release needs of their grants.
_ALLOCATIONS = (
    select(
        hold_allocations.c.grant_id,
        hold_allocations.c.amount,
        grants.c.expires_at,
        grants.c.expired_at,
    )
    .join_from(hold_allocations, grants, grants.c.id == hold_allocations.c.grant_id)
    .where(hold_allocations.c.hold_id == bindparam("b_hold"))
    .order_by(grants.c.expires_at.is_(None), grants.c.expires_at, grants.c.created_at, grants.c.id)
)
_MOVE_TO_HELD = (
    update(accounts)
    .where(accounts.c.user_id == bindparam("b_user"), accounts.c.available >= bindparam("b_n"))
    .values(
        available=accounts.c.available - bindparam("b_n"),
        held=accounts.c.held + bindparam("b_n"),
    )
    .returning(accounts.c.available)
)
_SETTLE_HELD = (
    update(accounts)
    .where(accounts.c.user_id == bindparam("b_user"), accounts.c.held >= bindparam("b_n"))
    .values(
        held=accounts.c.held - bindparam("b_n"),
        available=accounts.c.available + bindparam("b_back"),
    )
    .returning(accounts.c.available)
)
_SET_HOLD_STATUS = (
    update(holds)
    .where(holds.c.id == bindparam("b_hold"), holds.c.status == str(HoldStatus.HELD))
    .values(status=bindparam("b_status"), settled_at=bindparam("b_now", type_=TS))
)
_GIVE_BACK = (
    update(grants)
    .where(
        grants.c.id == bindparam("b_grant"),
        grants.c.expired_at.is_(None),
        grants.c.remaining + bindparam("b_n") <= grants.c.amount,
    )
    .values(remaining=grants.c.remaining + bindparam("b_n"))
)
_INSERT_HOLD = insert(holds)
_INSERT_ALLOCATIONS = insert(hold_allocations)
_INSERT_GRANT = insert(grants)
_INSERT_LEDGER = insert(ledger_entries)


def _hold(row: Row[Any], allocations: Sequence[Allocation] = ()) -> Hold:
    return Hold(
        id=row.id,
        user_id=row.user_id,
        request_id=row.request_id,
        amount=row.amount,
        status=HoldStatus(row.status),
        reference=row.reference,
        created_at=row.created_at,
        settled_at=row.settled_at,
        allocations=tuple(allocations),
    )


class SqlHolds(_Repo):
    """The portable steps (used on SQLite, where BEGIN IMMEDIATE already serialises writers and
    a statement costs no round trip)."""

    def place(self, hold: Hold, now: datetime) -> HoldWrite:
        c, user_id = self._c, hold.user_id
        if c.execute(_LOCK_ACCOUNT, {"b_user": user_id}).first() is None:
            return HoldWrite(HoldOutcome.NO_ACCOUNT)
        row = c.execute(_HOLD_BY_REQUEST, {"b_user": user_id, "b_request": hold.request_id}).first()
        if row is not None:
            return HoldWrite(HoldOutcome.FOUND, _hold(row, self._allocations(row.id)))
        spendable = [_grant(r) for r in c.execute(_SPENDABLE, {"b_user": user_id, "b_now": now})]
        try:
            parts = allocate(spendable, hold.amount, now)
        except InsufficientCredits:
            return HoldWrite(HoldOutcome.NOT_ENOUGH)
        after = c.execute(_MOVE_TO_HELD, {"b_user": user_id, "b_n": hold.amount}).scalar()
        if after is None:
            return HoldWrite(HoldOutcome.NOT_ENOUGH)
        for part in parts:
            if c.execute(_TAKE, {"b_grant": part.grant_id, "b_n": part.amount}).rowcount != 1:
                raise InsufficientCredits("credits changed concurrently")
        try:
            c.execute(
                _INSERT_HOLD,
                {
                    "id": hold.id,
                    "user_id": user_id,
                    "request_id": hold.request_id,
                    "amount": hold.amount,
                    "status": str(HoldStatus.HELD),
                    "reference": hold.reference,
                    "created_at": now,
                },
            )
        except IntegrityError as exc:
            if _is_unique_violation(exc):
                raise DuplicateKey(str(exc.orig)) from exc
            raise
        c.execute(
            _INSERT_ALLOCATIONS,
            [{"hold_id": hold.id, "grant_id": p.grant_id, "amount": p.amount} for p in parts],
        )
        _append_ledger(c, user_id, LedgerKind.HOLD, -hold.amount, hold.amount, after, hold, now)
        placed = Hold(
            id=hold.id,
            user_id=user_id,
            request_id=hold.request_id,
            amount=hold.amount,
            status=HoldStatus.HELD,
            reference=hold.reference,
            created_at=now,
            allocations=tuple(parts),
        )
        return HoldWrite(HoldOutcome.DONE, placed)

    def settle(
        self,
        user_id: str,
        request_id: str,
        target: HoldStatus,
        now: datetime,
        *,
        grace_id: str,
        grace_expires_at: datetime,
    ) -> HoldWrite:
        c = self._c
        c.execute(_LOCK_ACCOUNT, {"b_user": user_id})
        row = c.execute(_HOLD_BY_REQUEST, {"b_user": user_id, "b_request": request_id}).first()
        if row is None:
            return HoldWrite(HoldOutcome.NOT_FOUND)
        hold = _hold(row)
        if hold.status is not HoldStatus.HELD:
            return HoldWrite(HoldOutcome.FOUND, hold)
        c.execute(_SET_HOLD_STATUS, {"b_hold": hold.id, "b_status": str(target), "b_now": now})
        release = target is HoldStatus.RELEASED
        after = c.execute(
            _SETTLE_HELD,
            {"b_user": user_id, "b_n": hold.amount, "b_back": hold.amount if release else 0},
        ).scalar()
        if after is None:
            raise RuntimeError(f"held balance of {user_id} is below a hold being settled")
        if release:
            self._give_back(hold, now, grace_id, grace_expires_at)
        kind, amount = (LedgerKind.RELEASE, hold.amount) if release else (LedgerKind.CAPTURE, 0)
        _append_ledger(c, user_id, kind, amount, -hold.amount, after, hold, now)
        return HoldWrite(HoldOutcome.DONE, hold.settled(target, now))

    def _give_back(self, hold: Hold, now: datetime, grace_id: str, expires_at: datetime) -> None:
        """Each share goes back to its grant unless the grant has expired (swept or not); those
        shares come back as one grace grant."""
        c, regrant = self._c, 0
        for part in c.execute(_ALLOCATIONS, {"b_hold": hold.id}).all():
            expired = part.expired_at is not None or (
                part.expires_at is not None and part.expires_at <= now
            )
            if expired or (
                c.execute(_GIVE_BACK, {"b_grant": part.grant_id, "b_n": part.amount}).rowcount != 1
            ):
                regrant += part.amount
        if regrant:
            c.execute(
                _INSERT_GRANT,
                {
                    "id": grace_id,
                    "user_id": hold.user_id,
                    "source": str(GrantSource.GRACE),
                    "amount": regrant,
                    "remaining": regrant,
                    "expires_at": expires_at,
                    "created_at": now,
                    "reference": f"returned from {hold.reference or hold.request_id}"[:200],
                    "idempotency_key": f"grace:{hold.id}",
                },
            )

    def _allocations(self, hold_id: str) -> list[Allocation]:
        rows = self._c.execute(_ALLOCATIONS, {"b_hold": hold_id})
        return [Allocation(r.grant_id, r.amount) for r in rows]


def _append_ledger(
    c: Connection,
    user_id: str,
    kind: LedgerKind,
    amount: int,
    held_change: int,
    after: int,
    hold: Hold,
    now: datetime,
) -> None:
    c.execute(
        _INSERT_LEDGER,
        {
            "user_id": user_id,
            "kind": str(kind),
            "amount": amount,
            "held_change": held_change,
            "balance_after": after,
            "reference": hold.reference[:200],
            "reason": "",
            "hold_id": hold.id,
            "created_at": now,
        },
    )


# PostgreSQL: one call of a function from migration 0003 (one statement, one round trip).
_PG_HOLD_COLUMNS = (
    column("r_outcome", String),
    column("r_id", String),
    column("r_amount", BigInteger),
    column("r_status", String),
    column("r_reference", String),
    column("r_created_at", TS),
    column("r_settled_at", TS),
)
_PG_PLACE = text(
    "SELECT * FROM billing_place_hold(:b_user, :b_request, :b_n, :b_reference, :b_hold, :b_now)"
).columns(*_PG_HOLD_COLUMNS, column("r_grant_ids"), column("r_parts"))
_PG_SETTLE = text(
    "SELECT * FROM billing_settle_hold("
    ":b_user, :b_request, :b_target, :b_now, :b_grace, :b_grace_expires)"
).columns(*_PG_HOLD_COLUMNS)
_CHANGED_CONCURRENTLY = "credits changed concurrently"


def _pg_hold(
    row: Row[Any], user_id: str, request_id: str, allocations: Sequence[Allocation] = ()
) -> Hold:
    return Hold(
        id=row.r_id,
        user_id=user_id,
        request_id=request_id,
        amount=row.r_amount,
        status=HoldStatus(row.r_status),
        reference=row.r_reference,
        created_at=row.r_created_at,
        settled_at=row.r_settled_at,
        allocations=tuple(allocations),
    )


class PgHolds(SqlHolds):
    def place(self, hold: Hold, now: datetime) -> HoldWrite:
        params = {
            "b_user": hold.user_id,
            "b_request": hold.request_id,
            "b_n": hold.amount,
            "b_reference": hold.reference,
            "b_hold": hold.id,
            "b_now": now,
        }
        try:
            row = self._c.execute(_PG_PLACE, params).one()
        except IntegrityError as exc:
            if _is_unique_violation(exc):
                raise DuplicateKey(str(exc.orig)) from exc
            raise
        except DBAPIError as exc:
            if _CHANGED_CONCURRENTLY in str(exc.orig):
                raise InsufficientCredits(_CHANGED_CONCURRENTLY) from exc
            raise
        outcome = HoldOutcome(row.r_outcome)
        if row.r_id is None:
            return HoldWrite(outcome)
        ids, amounts = row.r_grant_ids or (), row.r_parts or ()
        parts = [Allocation(g, n) for g, n in zip(ids, amounts, strict=True)]
        return HoldWrite(outcome, _pg_hold(row, hold.user_id, hold.request_id, parts))

    def settle(
        self,
        user_id: str,
        request_id: str,
        target: HoldStatus,
        now: datetime,
        *,
        grace_id: str,
        grace_expires_at: datetime,
    ) -> HoldWrite:
        params = {
            "b_user": user_id,
            "b_request": request_id,
            "b_target": str(target),
            "b_now": now,
            "b_grace": grace_id,
            "b_grace_expires": grace_expires_at,
        }
        row = self._c.execute(_PG_SETTLE, params).one()
        outcome = HoldOutcome(row.r_outcome)
        if row.r_id is None:
            return HoldWrite(outcome)
        return HoldWrite(outcome, _pg_hold(row, user_id, request_id))


def _ledger_entry(r: Row[Any]) -> LedgerEntry:
    return LedgerEntry(
        id=r.id,
        user_id=r.user_id,
        kind=LedgerKind(r.kind),
        amount=r.amount,
        held_change=r.held_change,
        balance_after=r.balance_after,
        reference=r.reference,
        reason=r.reason,
        created_at=r.created_at,
    )


class SqlLedger(_Repo):
    def append(self, entry: NewLedgerEntry, now: datetime) -> None:
        self._insert(
            insert(ledger_entries).values(
                user_id=entry.user_id,
                kind=str(entry.kind),
                amount=entry.amount,
                held_change=entry.held_change,
                balance_after=entry.balance_after,
                reference=entry.reference[:200],
                reason=entry.reason[:500],
                grant_id=entry.grant_id,
                hold_id=entry.hold_id,
                idempotency_key=entry.idempotency_key,
                created_at=now,
            )
        )

    def has_key(self, key: str) -> bool:
        return (
            self._c.execute(
                select(ledger_entries.c.id).where(ledger_entries.c.idempotency_key == key)
            ).first()
            is not None
        )

    def by_key(self, key: str) -> LedgerEntry | None:
        row = self._c.execute(
            select(ledger_entries).where(ledger_entries.c.idempotency_key == key)
        ).first()
        return _ledger_entry(row) if row else None

    def page(self, user_id: str, page_size: int, before_id: int | None) -> Sequence[LedgerEntry]:
        stmt = select(ledger_entries).where(ledger_entries.c.user_id == user_id)
        if before_id is not None:
            stmt = stmt.where(ledger_entries.c.id < before_id)
        rows = self._c.execute(stmt.order_by(ledger_entries.c.id.desc()).limit(page_size))
        return [_ledger_entry(r) for r in rows]

    def page_by_time(
        self, user_id: str, page_size: int, before: tuple[datetime, int] | None
    ) -> Sequence[LedgerLine]:
        c = ledger_entries.c
        stmt = (
            select(
                ledger_entries,
                holds.c.request_id.label("hold_request_id"),
                grants.c.idempotency_key.label("grant_key"),
            )
            .select_from(
                ledger_entries.outerjoin(holds, holds.c.id == c.hold_id).outerjoin(
                    grants, grants.c.id == c.grant_id
                )
            )
            .where(c.user_id == user_id)
        )
        if before is not None:
            ts, entry_id = before
            stmt = stmt.where(or_(c.created_at < ts, and_(c.created_at == ts, c.id < entry_id)))
        rows = self._c.execute(stmt.order_by(c.created_at.desc(), c.id.desc()).limit(page_size))
        return [LedgerLine(_ledger_entry(r), r.hold_request_id, r.grant_key) for r in rows]

    def check(self, user_id: str) -> LedgerCheck:
        """Prove that the stored balances equal what the ledger, grants and holds imply."""
        c = self._c
        found: list[str] = []
        acct = c.execute(select(accounts).where(accounts.c.user_id == user_id)).one()
        ledger_sum, held_sum = c.execute(
            select(
                func.coalesce(func.sum(ledger_entries.c.amount), 0),
                func.coalesce(func.sum(ledger_entries.c.held_change), 0),
            ).where(ledger_entries.c.user_id == user_id)
        ).one()
        grant_sum = c.execute(
            select(func.coalesce(func.sum(grants.c.remaining), 0)).where(
                grants.c.user_id == user_id
            )
        ).scalar_one()
        held_holds = c.execute(
            select(func.coalesce(func.sum(holds.c.amount), 0)).where(
                holds.c.user_id == user_id, holds.c.status == str(HoldStatus.HELD)
            )
        ).scalar_one()
        last = c.execute(
            select(ledger_entries.c.balance_after)
            .where(ledger_entries.c.user_id == user_id)
            .order_by(ledger_entries.c.id.desc())
            .limit(1)
        ).scalar()
        if acct.available != ledger_sum:
            found.append(f"available {acct.available} != ledger sum {ledger_sum}")
        if acct.available != grant_sum:
            found.append(f"available {acct.available} != remaining in grants {grant_sum}")
        if acct.held != held_sum:
            found.append(f"held {acct.held} != ledger held changes {held_sum}")
        if acct.held != held_holds:
            found.append(f"held {acct.held} != open holds {held_holds}")
        if last is not None and last != acct.available:
            found.append(f"last ledger balance_after {last} != available {acct.available}")
        bad_grants = c.execute(
            select(grants.c.id).where(
                grants.c.user_id == user_id,
                or_(grants.c.remaining < 0, grants.c.remaining > grants.c.amount),
            )
        ).scalars()
        found.extend(f"grant {g} is out of bounds" for g in bad_grants)
        alloc = (
            select(
                hold_allocations.c.hold_id,
                func.sum(hold_allocations.c.amount).label("allocated"),
            )
            .group_by(hold_allocations.c.hold_id)
            .subquery()
        )
        mismatched = c.execute(
            select(holds.c.id)
            .select_from(holds.outerjoin(alloc, alloc.c.hold_id == holds.c.id))
            .where(
                holds.c.user_id == user_id,
                func.coalesce(alloc.c.allocated, 0) != holds.c.amount,
            )
        ).scalars()
        found.extend(f"hold {h} is not fully allocated to grants" for h in mismatched)
        return LedgerCheck(user_id=user_id, problems=found)


def _order(row: Row[Any]) -> Order:
    return Order(
        id=row.id,
        number=row.number,
        user_id=row.user_id,
        item_id=row.item_id,
        item_kind=ItemKind(row.item_kind),
        credits=row.credits,
        period_days=row.period_days,
        amount=row.amount,
        currency=row.currency,
        channel=row.channel,
        status=OrderStatus(row.status),
        created_at=row.created_at,
        expires_at=row.expires_at,
        request_id=row.request_id,
        checkout_url=row.checkout_url,
        checkout_code_url=row.checkout_code_url,
        provider_reference=row.provider_reference,
        provider_transaction_id=row.provider_transaction_id,
        paid_at=row.paid_at,
        failed_at=row.failed_at,
        expired_at=row.expired_at,
        refunded_at=row.refunded_at,
    )


_STATUS_TIME = {
    OrderStatus.PAID: "paid_at",
    OrderStatus.FAILED: "failed_at",
    OrderStatus.EXPIRED: "expired_at",
    OrderStatus.REFUNDED: "refunded_at",
}


class SqlOrders(_Repo):
    def add(self, order: Order) -> None:
        self._insert(
            insert(orders).values(
                id=order.id,
                number=order.number,
                user_id=order.user_id,
                request_id=order.request_id,
                item_id=order.item_id,
                item_kind=str(order.item_kind),
                credits=order.credits,
                period_days=order.period_days,
                amount=order.amount,
                currency=order.currency,
                channel=order.channel,
                status=str(order.status),
                created_at=order.created_at,
                expires_at=order.expires_at,
            )
        )

    def get(self, order_id: str) -> Order | None:
        row = self._c.execute(select(orders).where(orders.c.id == order_id)).first()
        return _order(row) if row else None

    def by_request(self, user_id: str, request_id: str) -> Order | None:
        row = self._c.execute(
            select(orders).where(orders.c.user_id == user_id, orders.c.request_id == request_id)
        ).first()
        return _order(row) if row else None

    def page(
        self, user_id: str, page_size: int, after: tuple[datetime, str] | None
    ) -> Sequence[Order]:
        stmt = select(orders).where(orders.c.user_id == user_id)
        if after is not None:
            ts, oid = after
            stmt = stmt.where(
                or_(orders.c.created_at < ts, and_(orders.c.created_at == ts, orders.c.id < oid))
            )
        rows = self._c.execute(
            stmt.order_by(orders.c.created_at.desc(), orders.c.id.desc()).limit(page_size)
        )
        return [_order(r) for r in rows]

    def settled_page(
        self,
        user_id: str,
        page_size: int,
        event: Literal["paid", "refunded"],
        before: tuple[datetime, str | None] | None,
    ) -> Sequence[Order]:
        at = orders.c.paid_at if event == "paid" else orders.c.refunded_at
        stmt = select(orders).where(orders.c.user_id == user_id, at.is_not(None))
        if before is not None:
            ts, oid = before
            same = at == ts if oid is None else and_(at == ts, orders.c.id < oid)
            stmt = stmt.where(or_(at < ts, same))
        rows = self._c.execute(stmt.order_by(at.desc(), orders.c.id.desc()).limit(page_size))
        return [_order(r) for r in rows]

    def set_checkout(
        self, order_id: str, url: str | None, code_url: str | None, provider_reference: str
    ) -> None:
        self._c.execute(
            update(orders)
            .where(orders.c.id == order_id)
            .values(
                checkout_url=url, checkout_code_url=code_url, provider_reference=provider_reference
            )
        )

    def transition(
        self,
        order_id: str,
        sources: frozenset[OrderStatus],
        target: OrderStatus,
        now: datetime,
        transaction_id: str | None = None,
    ) -> bool:
        values: dict[str, Any] = {"status": str(target), _STATUS_TIME[target]: now}
        if transaction_id:
            values["provider_transaction_id"] = transaction_id
        try:
            result = self._c.execute(
                update(orders)
                .where(orders.c.id == order_id, orders.c.status.in_([str(s) for s in sources]))
                .values(**values)
            )
        except IntegrityError as exc:
            if _is_unique_violation(exc):
                raise DuplicateKey("provider transaction id already used") from exc
            raise
        return result.rowcount == 1

    def by_transaction(self, channel: str, transaction_id: str) -> Order | None:
        row = self._c.execute(
            select(orders).where(
                orders.c.channel == channel, orders.c.provider_transaction_id == transaction_id
            )
        ).first()
        return _order(row) if row else None

    def pending_since(self, cutoff: datetime, limit: int) -> Sequence[Order]:
        rows = self._c.execute(
            select(orders)
            .where(orders.c.status == str(OrderStatus.PENDING), orders.c.created_at <= cutoff)
            .order_by(orders.c.created_at)
            .limit(limit)
        )
        return [_order(r) for r in rows]

    def due_for_expiry(self, now: datetime, limit: int) -> Sequence[Order]:
        rows = self._c.execute(
            select(orders)
            .where(orders.c.status == str(OrderStatus.PENDING), orders.c.expires_at <= now)
            .limit(limit)
        )
        return [_order(r) for r in rows]


def _membership(row: Row[Any]) -> Membership:
    return Membership(
        user_id=row.user_id,
        plan_id=row.plan_id,
        status=MembershipStatus(row.status),
        period_start=row.period_start,
        period_end=row.period_end,
        quota_total=row.quota_total,
        subscription_id=row.subscription_id,
        cancel_at_period_end=row.cancel_at_period_end,
    )


class SqlMemberships(_Repo):
    def get(self, user_id: str) -> Membership | None:
        row = self._c.execute(select(memberships).where(memberships.c.user_id == user_id)).first()
        return _membership(row) if row else None

    def by_subscription(self, subscription_id: str) -> Membership | None:
        row = self._c.execute(
            select(memberships).where(memberships.c.subscription_id == subscription_id)
        ).first()
        return _membership(row) if row else None

    def put(self, membership: Membership) -> None:
        values = {
            "plan_id": membership.plan_id,
            "status": str(membership.status),
            "period_start": membership.period_start,
            "period_end": membership.period_end,
            "quota_total": membership.quota_total,
            "subscription_id": membership.subscription_id,
            "cancel_at_period_end": membership.cancel_at_period_end,
        }
        # Callers hold the account lock, so read-then-write of this one row cannot interleave.
        result = self._c.execute(
            update(memberships).where(memberships.c.user_id == membership.user_id).values(**values)
        )
        if result.rowcount == 0:
            self._c.execute(insert(memberships).values(user_id=membership.user_id, **values))

    def expire_due(self, now: datetime) -> int:
        result = self._c.execute(
            update(memberships)
            .where(
                memberships.c.status == str(MembershipStatus.ACTIVE),
                memberships.c.period_end <= now,
            )
            .values(status=str(MembershipStatus.EXPIRED))
        )
        return int(result.rowcount)


class SqlPaymentEvents(_Repo):
    def seen(self, provider: str, event_id: str) -> bool:
        row = self._c.execute(
            select(payment_events.c.event_id).where(
                payment_events.c.provider == provider, payment_events.c.event_id == event_id
            )
        ).first()
        return row is not None

    def record(
        self, provider: str, event_id: str, kind: str, order_id: str | None, now: datetime
    ) -> None:
        self._insert(
            insert(payment_events).values(
                provider=provider, event_id=event_id, kind=kind, order_id=order_id, received_at=now
            )
        )


class SqlCustomers(_Repo):
    def get(self, user_id: str, provider: str) -> str | None:
        return self._c.execute(
            select(payment_customers.c.customer_id).where(
                payment_customers.c.user_id == user_id, payment_customers.c.provider == provider
            )
        ).scalar()

    def for_user(self, user_id: str) -> Mapping[str, str]:
        rows = self._c.execute(
            select(payment_customers.c.provider, payment_customers.c.customer_id).where(
                payment_customers.c.user_id == user_id
            )
        )
        return {r.provider: r.customer_id for r in rows}

    def by_customer(self, provider: str, customer_id: str) -> str | None:
        return self._c.execute(
            select(payment_customers.c.user_id).where(
                payment_customers.c.provider == provider,
                payment_customers.c.customer_id == customer_id,
            )
        ).scalar()

    def add(self, user_id: str, provider: str, customer_id: str) -> None:
        self._insert(
            insert(payment_customers).values(
                user_id=user_id, provider=provider, customer_id=customer_id
            )
        )


class SqlUnitOfWork(SqlUnitOfWorkBase):
    """One database transaction (billing's ``BillingUnitOfWork``): it begins on ``__enter__``
    and ends on ``commit``/``rollback``/``__exit__``; rolled back unless ``commit()`` was called."""

    accounts: ports.AccountRepository
    grants: ports.GrantRepository
    holds: ports.HoldRepository
    ledger: ports.LedgerRepository
    orders: ports.OrderRepository
    memberships: ports.MembershipRepository
    payment_events: ports.PaymentEventRepository
    customers: ports.CustomerRepository

    def _bind(self, conn: Connection) -> None:
        self.accounts = SqlAccounts(conn)
        self.grants = SqlGrants(conn)
        self.holds = PgHolds(conn) if conn.dialect.name == "postgresql" else SqlHolds(conn)
        self.ledger = SqlLedger(conn)
        self.orders = SqlOrders(conn)
        self.memberships = SqlMemberships(conn)
        self.payment_events = SqlPaymentEvents(conn)
        self.customers = SqlCustomers(conn)

    def _commit_error(self, exc: IntegrityError) -> Exception | None:
        return DuplicateKey(str(exc.orig)) if _is_unique_violation(exc) else None

    def _exit_error(self, exc: BaseException) -> Exception | None:
        if isinstance(exc, IntegrityError) and _is_check_violation(exc):
            # A CHECK constraint stopped an overdraft that slipped past the conditions.
            return InsufficientCredits("not enough credits")
        return None


class SqlUnitOfWorkFactory:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def __call__(self) -> SqlUnitOfWork:
        return SqlUnitOfWork(self.engine)

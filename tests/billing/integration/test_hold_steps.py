"""The hold, capture and release steps on the real databases (F6): races against several grants,
one of them expired but not yet swept; repeats answered identically; on PostgreSQL each step is
one statement (a function from migration 0003)."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select

from atelier_billing.adapters.persistence.migrate import upgrade
from atelier_billing.adapters.persistence.tables import grants
from atelier_billing.application.accounts import GetBalance, ListLedger, SetUpAccount
from atelier_billing.application.adjustments import AdjustCredits
from atelier_billing.application.holds import CaptureHold, HoldCredits, ReleaseHold
from atelier_billing.bootstrap import BillingContainer, build_container
from atelier_billing.domain.model import Hold, LedgerKind
from tests.support.billing_server import billing_settings
from tests.support.fakes import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def app(database_url: str, tmp_path: Path, clock: FakeClock) -> Iterator[BillingContainer]:
    app = build_container(
        billing_settings(database_url, tmp_path, SIGNUP_BONUS_VALIDITY_DAYS=3), clock=clock
    )
    upgrade(app.engine)
    yield app
    app.close()


def together(calls: list[Callable[[], Any]]) -> list[Any]:
    """Run every call at once, one thread each, released by a barrier: results or exceptions."""
    barrier = threading.Barrier(len(calls))

    def attempt(call: Callable[[], Any]) -> Any:
        barrier.wait(timeout=60)
        try:
            return call()
        except Exception as exc:
            return exc

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(attempt, calls))


def grant(app: BillingContainer, amount: int, key: str, expires_in: timedelta | None) -> None:
    expires_at = None if expires_in is None else app.clock.now() + expires_in
    app.use_cases.adjust_credits(AdjustCredits(True, "u", amount, "test grant", key, expires_at))


def remaining(app: BillingContainer, key: str) -> int:
    with app.engine.connect() as conn:
        return int(
            conn.execute(
                select(grants.c.remaining).where(grants.c.idempotency_key == f"adjust:{key}")
            ).scalar_one()
        )


def test_concurrent_holds_against_a_small_balance_never_overspend_nor_spend_expired_credits(
    app: BillingContainer, clock: FakeClock
) -> None:
    svc = app.use_cases
    svc.set_up_account(SetUpAccount("u"))  # 10, expires in 3 days
    grant(app, 5, "soon", timedelta(days=1))
    grant(app, 7, "never", None)
    grant(app, 20, "stale", timedelta(hours=1))
    clock.advance(hours=2)  # "stale" has expired; the expiry job has not run: 22 spendable
    calls: list[Callable[[], Any]] = [
        partial(svc.hold_credits, HoldCredits("u", f"t{i}", 1, "")) for i in range(30)
    ]
    results = together(calls)
    assert Counter(type(r).__name__ for r in results) == {"Hold": 22, "InsufficientCredits": 8}
    balance = svc.get_balance(GetBalance("u"))
    assert (balance.available, balance.held) == (0, 22)
    assert (remaining(app, "soon"), remaining(app, "never"), remaining(app, "stale")) == (0, 0, 20)
    assert all(check.ok for check in svc.check_ledger())
    assert svc.run_expiry().expired_credits == 20  # the stale grant, whole


def test_the_same_hold_concurrently_is_one_hold_answered_identically(
    app: BillingContainer,
) -> None:
    svc = app.use_cases
    svc.set_up_account(SetUpAccount("u"))
    grant(app, 5, "soon", timedelta(days=1))
    request = HoldCredits("u", "task-1", 8, "task:1")
    results = together([lambda: svc.hold_credits(request)] * 12)
    first = results[0]
    assert isinstance(first, Hold)
    assert all(r == first for r in results)
    assert [part.amount for part in first.allocations] == [5, 3]
    balance = svc.get_balance(GetBalance("u"))
    assert (balance.available, balance.held) == (7, 8)
    kinds = [e.kind for e in svc.list_ledger(ListLedger("u", 0, "")).items]
    assert kinds.count(LedgerKind.HOLD) == 1
    assert all(check.ok for check in svc.check_ledger())


def test_concurrent_releases_return_the_credits_once(app: BillingContainer) -> None:
    svc = app.use_cases
    svc.set_up_account(SetUpAccount("u"))
    grant(app, 5, "soon", timedelta(days=1))
    svc.hold_credits(HoldCredits("u", "t", 9, ""))
    results = together([lambda: svc.release_hold(ReleaseHold("u", "t"))] * 10)
    assert all(r == results[0] for r in results)
    balance = svc.get_balance(GetBalance("u"))
    assert (balance.available, balance.held) == (15, 0)
    assert sorted(g.remaining for g in balance.grants) == [5, 10]  # back to their grants
    assert all(check.ok for check in svc.check_ledger())


def test_each_step_is_one_statement_on_postgresql(app: BillingContainer) -> None:
    if app.engine.dialect.name != "postgresql":
        pytest.skip("one statement per step is PostgreSQL's (SQLite runs prepared steps)")
    svc = app.use_cases
    svc.set_up_account(SetUpAccount("u"))
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    steps: list[Callable[[], Any]] = [
        lambda: svc.hold_credits(HoldCredits("u", "a", 2, "")),
        lambda: svc.hold_credits(HoldCredits("u", "a", 2, "")),  # the repeat
        lambda: svc.hold_credits(HoldCredits("u", "b", 2, "")),
        lambda: svc.capture_hold(CaptureHold("u", "a")),
        lambda: svc.capture_hold(CaptureHold("u", "a")),
        lambda: svc.release_hold(ReleaseHold("u", "b")),
    ]
    event.listen(app.engine, "before_cursor_execute", count)
    try:
        for step in steps:
            statements.clear()
            step()
            assert len(statements) == 1, statements
    finally:
        event.remove(app.engine, "before_cursor_execute", count)

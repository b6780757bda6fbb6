"""Use cases on the real databases with a controlled clock: expiry, grace, the database's own
guards."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import text, update
from sqlalchemy.exc import DBAPIError

from atelier_billing.adapters.persistence.migrate import upgrade
from atelier_billing.adapters.persistence.tables import accounts
from atelier_billing.application.accounts import GetBalance, ListLedger, SetUpAccount
from atelier_billing.application.adjustments import AdjustCredits
from atelier_billing.application.holds import CaptureHold, HoldCredits, ReleaseHold
from atelier_billing.bootstrap import BillingContainer, build_container
from atelier_billing.domain.errors import InsufficientCredits
from atelier_billing.domain.model import GrantSource, LedgerKind
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


def admin_grant(
    app: BillingContainer, user: str, amount: int, expires_in_days: int, key: str, clock: FakeClock
) -> None:
    app.use_cases.adjust_credits(
        AdjustCredits(
            True, user, amount, "test grant", key, clock.now() + timedelta(days=expires_in_days)
        )
    )


def test_spending_takes_the_earliest_expiring_grant_first(
    app: BillingContainer, clock: FakeClock
) -> None:
    svc = app.use_cases
    svc.set_up_account(SetUpAccount("u"))  # 10, expires in 3 days
    admin_grant(app, "u", 5, 1, "g1", clock)  # expires in 1 day
    admin_grant(app, "u", 20, 10, "g2", clock)  # expires in 10 days
    svc.hold_credits(HoldCredits("u", "t1", 8, ""))
    # the 1-day grant is used up, then 3 of the 3-day bonus; the 10-day grant is untouched
    remaining = {g.amount: g.remaining for g in svc.get_balance(GetBalance("u")).grants}
    assert remaining == {10: 7, 20: 20}


def test_expiry_of_a_partially_spent_grant(app: BillingContainer, clock: FakeClock) -> None:
    svc = app.use_cases
    svc.set_up_account(SetUpAccount("u"))
    svc.hold_credits(HoldCredits("u", "t1", 4, ""))
    svc.capture_hold(CaptureHold("u", "t1"))
    clock.advance(days=3, seconds=1)
    assert svc.get_balance(GetBalance("u")).available == 0  # already not spendable at read time
    report = svc.run_expiry()
    assert (report.expired_grants, report.expired_credits) == (1, 6)
    assert svc.run_expiry().expired_grants == 0  # only once
    [entry, *_] = svc.list_ledger(ListLedger("u", 0, "")).items
    assert (entry.kind, entry.amount, entry.balance_after) == (LedgerKind.EXPIRE, -6, 0)
    assert all(c.ok for c in svc.check_ledger())


def test_release_into_an_expired_grant_gets_a_grace_regrant(
    app: BillingContainer, clock: FakeClock
) -> None:
    svc = app.use_cases
    svc.set_up_account(SetUpAccount("u"))
    admin_grant(app, "u", 5, 30, "long", clock)
    svc.hold_credits(
        HoldCredits("u", "t1", 12, "task:t1")
    )  # 10 from the bonus, 2 from the long grant
    clock.advance(days=4)
    svc.run_expiry()
    svc.release_hold(ReleaseHold("u", "t1"))
    balance = svc.get_balance(GetBalance("u"))
    by_source = {g.source: g for g in balance.grants}
    assert balance.available == 15
    assert by_source[GrantSource.GRACE].remaining == 10
    assert by_source[GrantSource.GRACE].expires_at == clock.now() + timedelta(days=7)
    assert by_source[GrantSource.ADMIN].remaining == 5
    assert all(c.ok for c in svc.check_ledger())


def test_expiry_is_applied_before_a_hold(app: BillingContainer, clock: FakeClock) -> None:
    svc = app.use_cases
    svc.set_up_account(SetUpAccount("u"))
    clock.advance(days=5)
    with pytest.raises(InsufficientCredits):
        svc.hold_credits(HoldCredits("u", "t1", 1, ""))
    assert all(c.ok for c in svc.check_ledger())


def test_the_database_refuses_negative_balances_and_ledger_edits(app: BillingContainer) -> None:
    app.use_cases.set_up_account(SetUpAccount("u"))
    with pytest.raises(DBAPIError), app.engine.begin() as conn:
        conn.execute(update(accounts).where(accounts.c.user_id == "u").values(available=-1))
    with pytest.raises(DBAPIError), app.engine.begin() as conn:
        conn.execute(text("UPDATE ledger_entries SET amount = 1000"))
    with pytest.raises(DBAPIError), app.engine.begin() as conn:
        conn.execute(text("DELETE FROM ledger_entries"))
    assert app.use_cases.get_balance(GetBalance("u")).available == 10

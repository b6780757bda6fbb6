"""Issue 15 #5: billing with several processes. Two expiry runs at once (as two processes, each
with its own engine) expire every due grant exactly once, and the ledger stays consistent; the
periodic loop also takes a cluster-wide turn, so normally only one runs at a time."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from atelier_common.cluster import cluster_turn

from atelier_billing.adapters.persistence.migrate import upgrade
from atelier_billing.application.accounts import SetUpAccount
from atelier_billing.application.expiry import ExpiryReport, RunExpiry
from atelier_billing.application.holds import HoldCredits
from atelier_billing.bootstrap import BillingContainer, build_container
from atelier_billing.entrypoints.server import EXPIRY_TURN
from tests.support.billing_server import billing_settings
from tests.support.fakes import FakeClock

USERS = 30
BONUS = 10
RUNS = 3  # concurrent expiry runs, each on its own engine (like separate processes)


@pytest.fixture
def processes(
    database_url: str, tmp_path: Path
) -> Iterator[tuple[FakeClock, list[BillingContainer]]]:
    clock = FakeClock.real()
    settings = billing_settings(
        database_url, tmp_path, SIGNUP_BONUS_CREDITS=BONUS, SIGNUP_BONUS_VALIDITY_DAYS=1
    )
    apps = [build_container(settings, clock=clock) for _ in range(RUNS)]
    upgrade(apps[0].engine)
    try:
        yield clock, apps
    finally:
        for app in apps:
            app.close()


def test_concurrent_expiry_runs_expire_each_grant_once(
    processes: tuple[FakeClock, list[BillingContainer]],
) -> None:
    clock, apps = processes
    first = apps[0].use_cases
    for n in range(USERS):
        first.set_up_account(SetUpAccount(f"expiring-{n}"))
        if n % 3 == 0:  # some credits are held: those are not expired
            first.hold_credits(HoldCredits(f"expiring-{n}", f"task-{n}", 4, ""))
    held = sum(4 for n in range(USERS) if n % 3 == 0)
    clock.advance(days=2)

    reports: list[ExpiryReport] = []
    start = threading.Barrier(RUNS)

    def run(app: BillingContainer) -> None:
        start.wait()
        reports.append(app.use_cases.run_expiry(RunExpiry()))

    threads = [threading.Thread(target=run, args=(app,)) for app in apps]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(reports) == RUNS
    assert sum(r.expired_grants for r in reports) == USERS
    assert sum(r.expired_credits for r in reports) == USERS * BONUS - held
    assert all(check.ok for check in first.check_ledger())
    # A further run finds nothing left to do.
    assert apps[1].use_cases.run_expiry(RunExpiry()) == ExpiryReport()


def test_the_expiry_loop_takes_one_turn_at_a_time(
    processes: tuple[FakeClock, list[BillingContainer]],
) -> None:
    _clock, apps = processes
    postgres = apps[0].engine.dialect.name == "postgresql"
    with cluster_turn(apps[0].engine, EXPIRY_TURN) as mine:
        assert mine
        with cluster_turn(apps[1].engine, EXPIRY_TURN) as other:
            # PostgreSQL: another process skips its round; SQLite: one writer at a time anyway.
            assert other is not postgres
    with cluster_turn(apps[1].engine, EXPIRY_TURN) as after:
        assert after  # released at the end of the round

"""The billing command line in its own process, on the real databases: check-ledger proves
consistency and reports drift."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import update

from atelier_billing.adapters.persistence.tables import accounts
from atelier_billing.application.accounts import SetUpAccount
from atelier_billing.application.holds import HoldCredits
from atelier_billing.bootstrap import build_container
from tests.support.billing_server import billing_settings


def run_cli(database_url: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "BILLING_DATABASE_URL": database_url,
        "ATELIER_DATA_DIR": str(tmp_path),
    }
    return subprocess.run(
        [sys.executable, "-m", "atelier_billing.entrypoints.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_ledger_command_proves_consistency_and_reports_drift(
    database_url: str, tmp_path: Path
) -> None:
    assert run_cli(database_url, tmp_path, "migrate").returncode == 0
    app = build_container(billing_settings(database_url, tmp_path))
    try:
        app.use_cases.set_up_account(SetUpAccount("good"))
        app.use_cases.set_up_account(SetUpAccount("bad"))
        app.use_cases.hold_credits(HoldCredits("good", "t1", 3, ""))
        ok = run_cli(database_url, tmp_path, "check-ledger")
        assert ok.returncode == 0, ok.stdout + ok.stderr
        assert "2 accounts, 0 inconsistent" in ok.stdout
        with app.engine.begin() as conn:  # drift: a balance changed behind the ledger's back
            conn.execute(update(accounts).where(accounts.c.user_id == "bad").values(available=9))
    finally:
        app.close()
    drift = run_cli(database_url, tmp_path, "check-ledger")
    assert drift.returncode == 1
    assert "bad: available 9 != ledger sum 10" in drift.stdout
    assert "good:" not in drift.stdout

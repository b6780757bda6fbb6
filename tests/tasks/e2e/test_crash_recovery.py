"""kill -9 of a tasks process at the saga's dangerous points; a restarted one finishes the job
(a task whose CreateTask call died is failed and released: its caller never got an answer)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from atelier_common.context import outgoing_metadata

from atelier.billing.v1 import billing_pb2 as bpb
from atelier_tasks.application.queries import GetTaskQuery, ListTasksQuery
from atelier_tasks.domain.model import HoldState, TaskStatus
from tests.support.billing_server import INTERNAL_TOKEN, start_billing_server
from tests.tasks.conftest import wait_until
from tests.tasks.harness import MakeTasks

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("point", ["after_hold", "mid_dispatch", "before_capture"])
def test_killed_tasks_process_is_recovered(
    point: str, database_url: str, tmp_path: Path, make_tasks: MakeTasks
) -> None:
    billing = start_billing_server(database_url)
    try:
        md = outgoing_metadata(INTERNAL_TOKEN, user_id="carol")
        with grpc.insecure_channel(billing.address) as ch:
            billing.stub(ch).SetUpAccount(bpb.SetUpAccountRequest(), metadata=md)
        env = {
            **os.environ,
            "TASKS_DATABASE_URL": database_url,
            "ATELIER_DATA_DIR": str(tmp_path / "data"),
            "ATELIER_INTERNAL_TOKEN": INTERNAL_TOKEN,
            "BILLING_ADDRESS": billing.address,
            "TASKS_LEASE_SECONDS": "1",
        }
        # The schema first (the child does not migrate).
        make_tasks({"BILLING_ADDRESS": billing.address})
        child = subprocess.run(
            [sys.executable, "-m", "tests.tasks.crash_child", point, "carol"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert child.returncode == -9, child.stderr
        assert "survived" not in child.stdout

        restarted = make_tasks({"BILLING_ADDRESS": billing.address, "TASKS_LEASE_SECONDS": "1"})
        (task,) = restarted.use_cases.list_tasks(ListTasksQuery("carol", 10, ""))[0]
        worker = restarted.new_worker("restarted")

        def finished() -> bool:
            worker.run_once()
            with restarted.uow() as uow:
                t = uow.tasks.get(task.task.id)
            return t is not None and t.is_terminal and t.hold_state is not HoldState.HELD

        wait_until(finished, timeout=30, what="the task to be finished and settled")
        final = restarted.use_cases.get_task(GetTaskQuery("carol", task.task.id))
        with grpc.insecure_channel(billing.address) as ch:
            stub = billing.stub(ch)
            balance = stub.GetBalance(bpb.GetBalanceRequest(), metadata=md).balance
            entries = stub.ListLedgerEntries(
                bpb.ListLedgerEntriesRequest(page_size=100), metadata=md
            ).entries
        kinds = [e.kind for e in entries]
        assert kinds.count(bpb.LEDGER_ENTRY_KIND_HOLD) == 1
        if point == "after_hold":
            # The CreateTask call died before answering: its caller saw an error, so the task
            # must never run (issue 9 #9). It is failed and its hold released.
            assert final.task.status is TaskStatus.FAILED
            assert final.task.error_reason == "CREATE_INTERRUPTED"
            assert final.task.hold_state is HoldState.RELEASED
            assert final.images == []
            assert (balance.available, balance.held) == (10, 0)
            assert kinds.count(bpb.LEDGER_ENTRY_KIND_RELEASE) == 1
            assert kinds.count(bpb.LEDGER_ENTRY_KIND_CAPTURE) == 0
        else:
            assert final.task.status is TaskStatus.SUCCEEDED
            assert final.task.hold_state is HoldState.CAPTURED
            assert len(final.images) == 1
            assert (balance.available, balance.held) == (9, 0)
            assert kinds.count(bpb.LEDGER_ENTRY_KIND_CAPTURE) == 1
            assert kinds.count(bpb.LEDGER_ENTRY_KIND_RELEASE) == 0
        assert all(check.ok for check in billing.app.use_cases.check_ledger())
    finally:
        billing.stop()

"""Issue 9 #9 against a real billing process: stopped, killed with SIGKILL while a hold is in
flight, and too slow for the caller's deadline. Whenever CreateTask answers an error, no task of
that request ever runs, the ledger check passes, the credits are back once billing is, and a
retry of the same request afterwards creates exactly one task, charged once."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
import sqlalchemy as sa
from atelier_common.context import outgoing_metadata
from atelier_common.db import make_engine
from atelier_common.grpc_client import translate

from atelier.billing.v1 import billing_pb2 as bpb
from atelier.billing.v1 import billing_pb2_grpc as bpb_grpc
from atelier.tasks.v1 import tasks_pb2 as pb
from atelier.tasks.v1 import tasks_pb2_grpc as pb_grpc
from atelier_billing.adapters.persistence.migrate import upgrade as upgrade_billing
from atelier_billing.bootstrap import build_container as build_billing
from atelier_billing.settings import BillingSettings
from atelier_tasks.adapters.local_generation import LocalGenerationProvider
from atelier_tasks.application.ports.generation import GenerationRequest, GenerationResult
from atelier_tasks.application.queries import ListTasksQuery
from atelier_tasks.bootstrap import TasksContainer
from atelier_tasks.domain.model import HoldState, TaskStatus
from atelier_tasks.entrypoints.server import TasksServer, start_server
from tests.support.billing_server import INTERNAL_TOKEN
from tests.support.postgres import PostgresServer
from tests.tasks.conftest import wait_until
from tests.tasks.harness import MakeTasks

ROOT = Path(__file__).resolve().parents[3]
USER = "carol"
PARAMS: dict[str, Any] = {"prompt": "a lighthouse", "width": 256, "height": 256}
GATEWAY_DEADLINE = 15.0  # what the gateway gives POST /v1/tasks


class CountingProvider(LocalGenerationProvider):
    def __init__(self) -> None:
        super().__init__()
        self.submitted: list[str] = []

    def submit(self, request: GenerationRequest) -> GenerationResult:
        self.submitted.append(request.task_id)
        return super().submit(request)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class BillingProcess:
    """``atelier-billing serve`` as its own process, always on the same port."""

    database_url: str
    port: int
    data_dir: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        env = {
            **os.environ,
            "BILLING_DATABASE_URL": self.database_url,
            "BILLING_GRPC_PORT": str(self.port),
            "ATELIER_INTERNAL_TOKEN": INTERNAL_TOKEN,
            "ATELIER_DATA_DIR": str(self.data_dir),
            "BILLING_EXPIRY_INTERVAL_SECONDS": "3600",
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", "atelier_billing.entrypoints.cli", "serve"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(self._serving, timeout=30, what="billing to serve")

    def _serving(self) -> bool:
        assert self.process is not None and self.process.poll() is None, "billing exited"
        try:
            self.call("GetBalance", bpb.GetBalanceRequest(), timeout=1)
        except grpc.RpcError as exc:
            return exc.code() is not grpc.StatusCode.UNAVAILABLE
        return True

    def call(self, method: str, request: Any, timeout: float = 5) -> Any:
        with grpc.insecure_channel(self.address) as channel:
            stub = bpb_grpc.BillingServiceStub(channel)
            md = outgoing_metadata(INTERNAL_TOKEN, user_id=USER)
            return getattr(stub, method)(request, metadata=md, timeout=timeout)

    def balance(self) -> tuple[int, int]:
        b = self.call("GetBalance", bpb.GetBalanceRequest()).balance
        return b.available, b.held

    def ledger_kinds(self) -> list[int]:
        reply = self.call("ListLedgerEntries", bpb.ListLedgerEntriesRequest(page_size=100))
        return [e.kind for e in reply.entries]

    def kill(self) -> None:
        """SIGKILL: no clean shutdown, whatever was in flight is lost."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(10)
        self.process = None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.process = None

    def ledger_ok(self) -> bool:
        settings = BillingSettings(
            BILLING_DATABASE_URL=self.database_url,
            ATELIER_DATA_DIR=str(self.data_dir),
        )
        app = build_billing(settings)
        try:
            return all(check.ok for check in app.use_cases.check_ledger())
        finally:
            app.engine.dispose()


@dataclass
class Outage:
    billing: BillingProcess
    tasks: TasksContainer
    server: TasksServer
    provider: CountingProvider
    channel: grpc.Channel
    engine: sa.Engine  # billing's database, for holding its locks

    @property
    def stub(self) -> pb_grpc.TaskServiceStub:
        return pb_grpc.TaskServiceStub(self.channel)

    def create(self, request_id: str, timeout: float = GATEWAY_DEADLINE) -> Any:
        request = pb.CreateTaskRequest(
            type=pb.TASK_TYPE_TEXT_TO_IMAGE,
            params_json=json.dumps(PARAMS).encode(),
            request_id=request_id,
        )
        md = outgoing_metadata(INTERNAL_TOKEN, user_id=USER)
        return self.stub.CreateTask(request, metadata=md, timeout=timeout).task

    def create_refused(self, request_id: str, timeout: float = GATEWAY_DEADLINE) -> Any:
        """CreateTask that must fail with UNAVAILABLE before the caller's deadline."""
        started = time.monotonic()
        with pytest.raises(grpc.RpcError) as err:
            self.create(request_id, timeout)
        took = time.monotonic() - started
        error = translate("tasks", err.value)
        assert (error.status, error.reason) == ("UNAVAILABLE", "BILLING_UNAVAILABLE"), error
        assert took < timeout, took
        return err.value

    def tasks_of_user(self) -> list[Any]:
        return [v.task for v in self.tasks.use_cases.list_tasks(ListTasksQuery(USER, 100, ""))[0]]

    def settle_all(self) -> None:
        """Run the worker until no task is open or owes billing anything."""
        worker = self.tasks.new_worker("outage-worker")

        def settled() -> bool:
            worker.run_once()
            return all(
                t.is_terminal and t.hold_state in (HoldState.CAPTURED, HoldState.RELEASED)
                for t in self.tasks_of_user()
            )

        wait_until(settled, timeout=60, what="every task to finish and settle")

    def assert_nothing_ran_and_nothing_is_charged(self) -> None:
        self.settle_all()
        for task in self.tasks_of_user():
            assert task.status is TaskStatus.FAILED, task
            assert task.error_reason == "BILLING_UNAVAILABLE"
            assert task.hold_state is HoldState.RELEASED
        assert self.provider.submitted == []
        assert self.billing.balance() == (10, 0)
        assert self.billing.ledger_ok()

    def assert_retry_creates_one_task_charged_once(self, request_id: str) -> None:
        task = self.create(request_id)
        assert self.create(request_id).id == task.id  # the same request from now on
        self.settle_all()
        succeeded = [t for t in self.tasks_of_user() if t.status is TaskStatus.SUCCEEDED]
        assert [t.id for t in succeeded] == [task.id]
        assert self.provider.submitted == [task.id]
        assert self.billing.balance() == (9, 0)
        assert self.billing.ledger_kinds().count(bpb.LEDGER_ENTRY_KIND_CAPTURE) == 1
        assert self.billing.ledger_ok()


@pytest.fixture
def billing_database_url(
    database_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[str]:
    """Billing's own database next to the tasks one (its locks must not block tasks)."""
    if database_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'billing.db'}"
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    url = server.create_database()
    try:
        yield url
    finally:
        with contextlib.suppress(Exception):
            server.drop_database(url)


@pytest.fixture
def outage(billing_database_url: str, tmp_path: Path, make_tasks: MakeTasks) -> Iterator[Outage]:
    upgrade_billing(make_engine(billing_database_url))
    billing = BillingProcess(billing_database_url, free_port(), tmp_path / "billing-data")
    billing.start()
    billing.call("SetUpAccount", bpb.SetUpAccountRequest())
    assert billing.balance() == (10, 0)
    provider = CountingProvider()
    tasks = make_tasks(
        {"BILLING_ADDRESS": billing.address, "TASKS_HOLD_GRACE_SECONDS": 3},
        providers={"local": provider},
    )
    server = start_server(tasks, "127.0.0.1:0", run_worker=False)
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    engine = make_engine(billing_database_url)
    try:
        yield Outage(billing, tasks, server, provider, channel, engine)
    finally:
        channel.close()
        server.grpc.stop()
        billing.stop()
        engine.dispose()


@contextlib.contextmanager
def billing_blocked(outage: Outage) -> Iterator[None]:
    """Hold the lock billing's hold transaction needs, so a hold stays in flight."""
    with outage.engine.connect() as conn:
        transaction = conn.begin()  # on SQLite: BEGIN IMMEDIATE, the one writer
        if outage.engine.dialect.name == "postgresql":
            conn.execute(
                sa.text("SELECT 1 FROM accounts WHERE user_id = :u FOR UPDATE"), {"u": USER}
            )
        try:
            yield
        finally:
            transaction.rollback()


def hold_reached_billing(outage: Outage) -> bool:
    """The hold is in flight: the task row exists (it is written before billing is called) and,
    on PostgreSQL, billing's transaction is waiting for the account lock."""
    if not any(t.hold_state is HoldState.PLACING for t in outage.tasks_of_user()):
        return False
    if outage.engine.dialect.name != "postgresql":
        return True
    with outage.engine.connect() as conn:
        waiting = conn.execute(
            sa.text(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
        ).scalar_one()
    return bool(waiting)


def test_billing_stopped_answers_503_and_nothing_runs_or_is_charged(outage: Outage) -> None:
    outage.billing.stop()  # nothing listens on billing's address
    for _ in range(3):  # a client without an Idempotency-Key retrying its 503s
        outage.create_refused("req-1")
    assert len(outage.tasks_of_user()) == 3
    worker = outage.tasks.new_worker("while-down")
    for _ in range(3):
        worker.run_once()  # releases cannot reach billing: still owed, nothing dispatched
    assert outage.provider.submitted == []
    assert all(t.hold_state is HoldState.PLACING for t in outage.tasks_of_user())
    outage.billing.start()
    outage.assert_nothing_ran_and_nothing_is_charged()
    outage.assert_retry_creates_one_task_charged_once("req-1")


def test_billing_killed_while_the_hold_is_in_flight(outage: Outage) -> None:
    with ThreadPoolExecutor(1) as pool, billing_blocked(outage):
        pending: Future[Any] = pool.submit(outage.create_refused, "req-1")
        wait_until(lambda: hold_reached_billing(outage), timeout=20, what="the hold in flight")
        outage.billing.kill()
    pending.result(timeout=GATEWAY_DEADLINE + 5)
    (task,) = outage.tasks_of_user()
    assert task.status is TaskStatus.FAILED and task.error_reason == "BILLING_UNAVAILABLE"
    outage.tasks.new_worker("while-down").run_once()
    assert outage.provider.submitted == []
    outage.billing.start()
    outage.assert_nothing_ran_and_nothing_is_charged()
    assert outage.billing.ledger_kinds().count(bpb.LEDGER_ENTRY_KIND_HOLD) == 0
    outage.assert_retry_creates_one_task_charged_once("req-1")


def test_a_hold_that_lands_after_the_callers_deadline_is_released(outage: Outage) -> None:
    deadline = 3.0
    with ThreadPoolExecutor(1) as pool:
        with billing_blocked(outage):
            pending: Future[Any] = pool.submit(outage.create_refused, "req-1", deadline)
            pending.result(timeout=deadline + 5)  # answered UNAVAILABLE, within the deadline
        # Billing still had the request and places the hold now, after the saga gave up.
        wait_until(
            lambda: bpb.LEDGER_ENTRY_KIND_HOLD in outage.billing.ledger_kinds(),
            timeout=20,
            what="billing to place the late hold",
        )
    assert outage.billing.balance() == (9, 1)
    outage.assert_nothing_ran_and_nothing_is_charged()
    assert outage.billing.ledger_kinds().count(bpb.LEDGER_ENTRY_KIND_RELEASE) == 1
    outage.assert_retry_creates_one_task_charged_once("req-1")

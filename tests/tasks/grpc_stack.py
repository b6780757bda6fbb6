"""The tasks gRPC server on port 0 in front of the real billing service, for the issue-9 tests.

Kept apart from ``test_grpc_integration.py`` so that new test modules can share the fixture.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest

from atelier.tasks.v1 import tasks_pb2 as pb
from atelier_tasks.bootstrap import TasksContainer
from atelier_tasks.entrypoints.server import TasksServer, start_server
from tests.support.billing_server import RunningBilling, start_billing_server
from tests.support.fakes import FakeClock
from tests.tasks.harness import MakeTasks
from tests.tasks.stack_calls import StackCalls


@dataclass
class GrpcStack(StackCalls):
    billing: RunningBilling
    tasks: TasksContainer
    server: TasksServer
    clock: FakeClock
    channel: grpc.Channel

    def create(self, user: str, request_id: str = "", **params: Any) -> Any:
        params = {"prompt": "a lighthouse", "width": 256, "height": 256, **params}
        request = pb.CreateTaskRequest(
            type=pb.TASK_TYPE_TEXT_TO_IMAGE,
            params_json=json.dumps(params).encode(),
            request_id=request_id,
        )
        return self.stub.CreateTask(request, metadata=self.md(user)).task

    def ledger_ok(self) -> bool:
        return all(check.ok for check in self.billing.app.use_cases.check_ledger())


@pytest.fixture
def grpc_stack(database_url: str, make_tasks: MakeTasks) -> Iterator[GrpcStack]:
    """Billing and tasks (worker not running: tests drive it) on the test database."""
    billing = start_billing_server(database_url)
    clock = FakeClock.real()
    tasks = make_tasks({"BILLING_ADDRESS": billing.address}, clock=clock)
    server = start_server(tasks, "127.0.0.1:0", run_worker=False)
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    try:
        yield GrpcStack(billing, tasks, server, clock, channel)
    finally:
        channel.close()
        server.grpc.stop()
        billing.stop()

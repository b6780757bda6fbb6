"""Calls shared by the test stacks that run the real billing and tasks servers together."""

from __future__ import annotations

from typing import Any

import grpc
from atelier_common.context import outgoing_metadata

from atelier.billing.v1 import billing_pb2 as bpb
from atelier.tasks.v1 import tasks_pb2 as pb
from atelier.tasks.v1 import tasks_pb2_grpc as pb_grpc
from atelier_tasks.bootstrap import TasksContainer
from tests.support.billing_server import RunningBilling


class StackCalls:
    """Mixed into a dataclass that has ``billing``, ``tasks`` and a ``channel`` to tasks."""

    billing: RunningBilling
    tasks: TasksContainer
    channel: grpc.Channel

    @property
    def stub(self) -> pb_grpc.TaskServiceStub:
        return pb_grpc.TaskServiceStub(self.channel)

    def md(self, user: str | None) -> tuple[tuple[str, str], ...]:
        return outgoing_metadata(self.billing.internal_token, user_id=user)

    def set_up(self, user: str) -> None:
        with self.billing.channel() as ch:
            self.billing.stub(ch).SetUpAccount(bpb.SetUpAccountRequest(), metadata=self.md(user))

    def balance(self, user: str) -> tuple[int, int]:
        with self.billing.channel() as ch:
            b = self.billing.stub(ch).GetBalance(bpb.GetBalanceRequest(), metadata=self.md(user))
        return b.balance.available, b.balance.held

    def get(self, user: str, task_id: str) -> Any:
        return self.stub.GetTask(pb.GetTaskRequest(task_id=task_id), metadata=self.md(user)).task

    def run_worker(self) -> None:
        worker = self.tasks.new_worker("test-worker")
        while worker.run_once().total:
            pass

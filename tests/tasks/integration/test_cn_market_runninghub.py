"""MARKET=cn with RunningHub, on a fake clock: the real billing service, the tasks service wired by
configuration alone against the local RunningHub server, the worker run pass by pass — so the
status calls per task are exact: none before a poll is due, backoff between the configured
bounds, none once the task is terminal (timeout included). On SQLite and PostgreSQL."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from PIL import Image

from atelier.tasks.v1 import tasks_pb2 as pb
from atelier_tasks.adapters.runninghub_generation import RunningHubGenerationProvider
from atelier_tasks.bootstrap import TasksContainer
from atelier_tasks.entrypoints.server import TasksServer, start_server
from tests.support.billing_server import RunningBilling, start_billing_server
from tests.support.fakes import FakeClock
from tests.support.runninghub_server import (
    API_KEY,
    NODE_IMAGE,
    NODE_PROMPT,
    WEBAPP_POSE12,
    FakeRunningHub,
)
from tests.tasks.harness import MakeTasks
from tests.tasks.stack_calls import StackCalls


@dataclass
class CnStack(StackCalls):
    billing: RunningBilling
    tasks: TasksContainer
    server: TasksServer
    rh: FakeRunningHub
    clock: FakeClock
    channel: grpc.Channel

    def pose12(self, user: str) -> tuple[Any, str]:
        """A model_pose12 task handed to RunningHub; (the task, RunningHub's task id)."""
        task = self.create(user)
        before = set(self.rh.tasks)
        self.run_worker()
        running = self.get(user, task.id)
        assert running.status == pb.TASK_STATUS_PROCESSING and running.provider == "runninghub"
        (job,) = set(self.rh.tasks) - before
        return task, job

    def create(self, user: str) -> Any:
        photo = io.BytesIO()
        Image.new("RGB", (64, 80), (40, 90, 160)).save(photo, "PNG")
        key = f"{user}/uploads/garment.png"
        self.tasks.storage.put(key, photo.getvalue(), "image/png")
        request = pb.CreateTaskRequest(
            type=pb.TASK_TYPE_MODEL_POSE12,
            params_json=json.dumps({"scene": "indoor", "category": "dress"}).encode(),
            input_keys=[key],
        )
        return self.stub.CreateTask(request, metadata=self.md(user)).task


@pytest.fixture
def stack(database_url: str, make_tasks: MakeTasks) -> Iterator[CnStack]:
    rh = FakeRunningHub(queued_polls=2, running_polls=2)
    billing = start_billing_server(database_url)
    clock = FakeClock.real()
    tasks = make_tasks(
        {
            "MARKET": "cn",
            "MODERATION_PROVIDER": "local",  # Tencent moderation: test_cn_market_tasks.py, journey
            "TASKS_STORAGE": "local",
            "TASKS_PROVIDER_BASIC_CLEAN": "local",
            "BILLING_ADDRESS": billing.address,
            "TASKS_TIMEOUT_SECONDS": 600,
            "RUNNINGHUB_API_KEY": API_KEY,
            "RUNNINGHUB_API_BASE": rh.url,
            "RUNNINGHUB_WEBAPP_ID_MODEL_POSE12": WEBAPP_POSE12,
            "RUNNINGHUB_NODE_IMAGE": NODE_IMAGE,
            "RUNNINGHUB_NODE_PROMPT": NODE_PROMPT,
            "RUNNINGHUB_OUTPUT_TRUSTED_ORIGINS": rh.url,
            "RUNNINGHUB_POLL_MIN_SECONDS": 2,
            "RUNNINGHUB_POLL_MAX_SECONDS": 10,
        },
        clock=clock,
    )
    server = start_server(tasks, "127.0.0.1:0", run_worker=False)
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    try:
        yield CnStack(billing, tasks, server, rh, clock, channel)
    finally:
        channel.close()
        server.grpc.stop()
        billing.stop()
        rh.close()


def test_market_cn_wires_runninghub_for_model_pose12(stack: CnStack) -> None:
    assert isinstance(stack.tasks.providers["runninghub"], RunningHubGenerationProvider)
    assert stack.tasks.settings.routes() == {
        "text_to_image": "local",
        "basic_clean": "local",
        "model_pose12": "runninghub",
    }


def test_status_is_asked_only_when_due_with_backoff_and_never_after_the_end(
    stack: CnStack,
) -> None:
    stack.set_up("alice")
    before = stack.balance("alice")
    task, job = stack.pose12("alice")
    # Reading a processing task — one, the list, its event stream — never asks RunningHub.
    md = stack.md("alice")
    for _ in range(3):
        stack.get("alice", task.id)
        stack.stub.ListTasks(pb.ListTasksRequest(page_size=50), metadata=md)
        stream = stack.stub.WatchTask(pb.WatchTaskRequest(task_id=task.id), metadata=md)
        first = next(iter(stream))
        assert first.event.sequence >= 1
        stream.cancel()  # type: ignore[no-untyped-call]  # (grpc-stubs)
    assert stack.rh.calls[job] == 0
    asked = []  # status calls after each clock step
    for step in (1, 1, 2, 4, 8, 10, 10, 10):  # seconds; bounds 2 → 10
        stack.clock.advance(seconds=step)
        stack.run_worker()
        asked.append(stack.rh.status_counts[job])
    # Due 2 s after the submit, then 4 s, 8 s, then every 10 s (the maximum): t = 2, 6, 14, 24,
    # 34; queued twice, running twice, then SUCCESS — and nothing more.
    assert asked == [0, 1, 1, 2, 3, 4, 5, 5]
    done = stack.get("alice", task.id)
    assert done.status == pb.TASK_STATUS_SUCCEEDED and len(done.images) == 12
    assert stack.balance("alice") == (before[0] - 1, 0)
    calls = stack.rh.calls[job]
    assert calls == 6  # five status calls, one outputs call
    stack.clock.advance(hours=2)
    stack.run_worker()
    for _ in range(3):
        stack.get("alice", task.id)
    assert stack.rh.calls[job] == calls


def test_a_task_running_past_its_timeout_fails_is_released_and_asked_only_to_cancel(
    stack: CnStack,
) -> None:
    stack.set_up("alice")
    before = stack.balance("alice")
    stack.rh.queued_polls = 10**6  # stays queued at RunningHub
    task, job = stack.pose12("alice")
    stack.clock.advance(seconds=601)
    stack.run_worker()
    failed = stack.get("alice", task.id)
    assert failed.status == pb.TASK_STATUS_FAILED and failed.error_reason == "TIMEOUT"
    assert stack.balance("alice") == before
    cancels = [p for path, p in stack.rh.requests if path.endswith("/cancel")]
    assert [p["taskId"] for p in cancels] == [job]  # told to stop, once
    status_calls, calls = stack.rh.status_counts[job], stack.rh.calls[job]
    stack.clock.advance(hours=1)
    stack.run_worker()
    assert (stack.rh.status_counts[job], stack.rh.calls[job]) == (status_calls, calls)


def test_a_wrong_api_key_fails_the_task_with_a_reason_for_the_admin(stack: CnStack) -> None:
    stack.set_up("alice")
    before = stack.balance("alice")
    stack.rh.api_key = "rh-rotated"  # the key was rotated at RunningHub
    task = stack.create("alice")
    stack.run_worker()
    failed = stack.get("alice", task.id)
    assert failed.status == pb.TASK_STATUS_FAILED and failed.error_reason == "PROVIDER_FAILED"
    assert "802" in failed.error_message and "RUNNINGHUB_API_KEY" in failed.error_message
    assert API_KEY not in failed.error_message
    assert stack.balance("alice") == before

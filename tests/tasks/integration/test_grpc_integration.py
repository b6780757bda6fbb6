"""Tasks and the real billing service over gRPC: the saga end to end, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, cast

import grpc
import pytest
from atelier_common.context import outgoing_metadata

from atelier.tasks.v1 import tasks_pb2 as pb
from atelier_tasks.adapters.local_generation import LocalGenerationProvider
from atelier_tasks.application.ports.generation import GenerationRequest, GenerationResult
from atelier_tasks.bootstrap import TasksContainer
from atelier_tasks.entrypoints.server import TasksServer, start_server
from tests.support.billing_server import RunningBilling, start_billing_server
from tests.support.fakes import FakeClock
from tests.tasks.billing_rpc import error_reason
from tests.tasks.harness import MakeTasks
from tests.tasks.stack_calls import StackCalls


class CountingProvider(LocalGenerationProvider):
    def __init__(self) -> None:
        super().__init__()
        self.submitted: list[str] = []

    def submit(self, request: GenerationRequest) -> GenerationResult:
        self.submitted.append(request.task_id)
        return super().submit(request)


@dataclass
class Stack(StackCalls):
    billing: RunningBilling
    tasks: TasksContainer
    server: TasksServer
    provider: CountingProvider
    clock: Any
    channel: grpc.Channel

    def create(self, user: str, **params: Any) -> Any:
        params = {"prompt": "a lighthouse", "width": 256, "height": 256, **params}
        request = pb.CreateTaskRequest(
            type=pb.TASK_TYPE_TEXT_TO_IMAGE, params_json=json.dumps(params).encode()
        )
        return self.stub.CreateTask(request, metadata=self.md(user)).task

    def ledger_ok(self) -> bool:
        return all(check.ok for check in self.billing.app.use_cases.check_ledger())


@pytest.fixture
def stack(database_url: str, make_tasks: MakeTasks) -> Iterator[Stack]:
    billing = start_billing_server(database_url)
    provider = CountingProvider()
    clock = FakeClock.real()
    tasks = make_tasks(
        {"BILLING_ADDRESS": billing.address}, providers={"local": provider}, clock=clock
    )
    server = start_server(tasks, "127.0.0.1:0", run_worker=False)
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    try:
        yield Stack(billing, tasks, server, provider, clock, channel)
    finally:
        channel.close()
        server.grpc.stop()
        billing.stop()


def test_create_succeeds_and_captures(stack: Stack) -> None:
    stack.set_up("alice")
    task = stack.create("alice")
    assert task.status == pb.TASK_STATUS_PENDING and task.cost == 1
    assert stack.balance("alice") == (9, 1)
    stack.run_worker()
    done = stack.get("alice", task.id)
    assert done.status == pb.TASK_STATUS_SUCCEEDED
    assert len(done.images) == 1 and done.images[0].url and done.images[0].thumbnail_url
    assert stack.balance("alice") == (9, 0)
    assert stack.ledger_ok()


def test_provider_failure_releases(stack: Stack) -> None:
    stack.set_up("alice")
    task = stack.create("alice", sandbox_outcome="fail")
    stack.run_worker()
    done = stack.get("alice", task.id)
    assert done.status == pb.TASK_STATUS_FAILED and done.error_reason == "PROVIDER_FAILED"
    assert stack.balance("alice") == (10, 0)
    assert stack.ledger_ok()


def test_timeout_releases(stack: Stack) -> None:
    stack.set_up("alice")
    task = stack.create("alice")
    stack.clock.advance(minutes=11)
    stack.run_worker()
    done = stack.get("alice", task.id)
    assert done.status == pb.TASK_STATUS_FAILED and done.error_reason == "TIMEOUT"
    assert stack.provider.submitted == []
    assert stack.balance("alice") == (10, 0)
    assert stack.ledger_ok()


def test_cancel_releases(stack: Stack) -> None:
    stack.set_up("alice")
    task = stack.create("alice")
    cancelled = stack.stub.CancelTask(
        pb.CancelTaskRequest(task_id=task.id), metadata=stack.md("alice")
    ).task
    assert cancelled.status == pb.TASK_STATUS_CANCELLED
    stack.run_worker()
    assert stack.provider.submitted == []
    assert stack.balance("alice") == (10, 0)
    with pytest.raises(grpc.RpcError) as err:
        stack.stub.CancelTask(pb.CancelTaskRequest(task_id=task.id), metadata=stack.md("alice"))
    assert err.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert stack.ledger_ok()


def test_insufficient_credits_creates_nothing(stack: Stack) -> None:
    stack.set_up("alice")
    for _ in range(10):
        stack.create("alice")
    with pytest.raises(grpc.RpcError) as err:
        stack.create("alice")
    assert err.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert error_reason(err.value) == "INSUFFICIENT_CREDITS"
    listed = stack.stub.ListTasks(pb.ListTasksRequest(page_size=50), metadata=stack.md("alice"))
    assert len(listed.tasks) == 10
    with pytest.raises(grpc.RpcError) as err:
        stack.create("nobody")  # no account at all
    assert error_reason(err.value) == "INSUFFICIENT_CREDITS"
    assert stack.provider.submitted == []
    stack.run_worker()
    assert len(stack.provider.submitted) == 10
    assert stack.balance("alice") == (0, 0)
    assert stack.ledger_ok()


def test_bad_input_and_auth(stack: Stack) -> None:
    stack.set_up("alice")
    with pytest.raises(grpc.RpcError) as err:
        stack.create("alice", prompt="x" * 5000)
    assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert error_reason(err.value) == "INVALID_PARAMS"
    with pytest.raises(grpc.RpcError) as err:
        stack.stub.CreateTask(pb.CreateTaskRequest(), metadata=stack.md("alice"))
    assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as err:
        stack.stub.GetTask(pb.GetTaskRequest(task_id="x"), metadata=(("x-atelier-user-id", "a"),))
    assert err.value.code() is grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.RpcError) as err:
        stack.stub.GetTask(pb.GetTaskRequest(task_id="x"), metadata=stack.md(None))
    assert err.value.code() is grpc.StatusCode.UNAUTHENTICATED
    assert stack.balance("alice") == (10, 0)


def test_isolation_over_grpc(stack: Stack) -> None:
    stack.set_up("alice")
    task = stack.create("alice")
    stack.run_worker()
    md = stack.md("bob")
    for call in (
        lambda: stack.stub.GetTask(pb.GetTaskRequest(task_id=task.id), metadata=md),
        lambda: stack.stub.CancelTask(pb.CancelTaskRequest(task_id=task.id), metadata=md),
        lambda: list(stack.stub.WatchTask(pb.WatchTaskRequest(task_id=task.id), metadata=md)),
    ):
        with pytest.raises(grpc.RpcError) as err:
            call()
        assert err.value.code() is grpc.StatusCode.NOT_FOUND
    assert not stack.stub.ListTasks(pb.ListTasksRequest(), metadata=md).tasks
    assert not stack.stub.ListImages(pb.ListImagesRequest(), metadata=md).images
    assert stack.stub.ListImages(pb.ListImagesRequest(), metadata=stack.md("alice")).images


def test_admins_list_every_users_tasks_and_users_are_refused(stack: Stack) -> None:
    for user in ("alice", "bob"):
        stack.set_up(user)
    mine = {stack.create("alice").id, stack.create("bob").id}
    admin_md = outgoing_metadata(stack.billing.internal_token, user_id="root", role="admin")
    listed = stack.stub.ListAllTasks(pb.ListAllTasksRequest(page_size=1), metadata=admin_md)
    assert len(listed.tasks) == 1 and listed.next_page_token
    rest = stack.stub.ListAllTasks(
        pb.ListAllTasksRequest(page_size=1, page_token=listed.next_page_token), metadata=admin_md
    )
    assert {listed.tasks[0].id, rest.tasks[0].id} == mine and not rest.next_page_token
    done = pb.ListAllTasksRequest(status=pb.TASK_STATUS_SUCCEEDED)
    assert not stack.stub.ListAllTasks(done, metadata=admin_md).tasks
    with pytest.raises(grpc.RpcError) as err:
        stack.stub.ListAllTasks(pb.ListAllTasksRequest(), metadata=stack.md("alice"))
    assert err.value.code() is grpc.StatusCode.PERMISSION_DENIED
    assert error_reason(err.value) == "ADMIN_ONLY"
    with pytest.raises(grpc.RpcError) as err:
        stack.stub.ListAllTasks(
            pb.ListAllTasksRequest(status=cast(pb.TaskStatus, 99)), metadata=admin_md
        )
    assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT


def test_admins_list_one_users_tasks_with_their_owner_and_a_token_per_task(stack: Stack) -> None:
    for user in ("alice", "bob"):
        stack.set_up(user)
    alices = [stack.create("alice").id for _ in range(3)]
    stack.create("bob")
    admin_md = outgoing_metadata(stack.billing.internal_token, user_id="root", role="admin")
    everything = stack.stub.ListAllTasks(pb.ListAllTasksRequest(), metadata=admin_md)
    assert sorted(t.user_id for t in everything.tasks) == ["alice", "alice", "alice", "bob"]
    only = stack.stub.ListAllTasks(pb.ListAllTasksRequest(user_id="alice"), metadata=admin_md)
    listed = [t.id for t in only.tasks]
    assert sorted(listed) == sorted(alices)
    assert {t.user_id for t in only.tasks} == {"alice"}
    assert len(only.page_tokens) == 3 and not only.next_page_token
    # the token of an item continues right after it
    after_first = stack.stub.ListAllTasks(
        pb.ListAllTasksRequest(user_id="alice", page_token=only.page_tokens[0]),
        metadata=admin_md,
    )
    assert [t.id for t in after_first.tasks] == listed[1:]
    own = stack.stub.GetTask(pb.GetTaskRequest(task_id=alices[0]), metadata=stack.md("alice"))
    assert own.task.user_id == "alice"


def test_watch_late_and_resumed_sees_every_event_once_in_order(stack: Stack) -> None:
    stack.set_up("alice")
    task = stack.create("alice")
    live: list[int] = []
    first = threading.Event()

    def follow() -> None:
        for r in stack.stub.WatchTask(
            pb.WatchTaskRequest(task_id=task.id), metadata=stack.md("alice")
        ):
            live.append(r.event.sequence)
            first.set()

    watcher = threading.Thread(target=follow)
    watcher.start()
    assert first.wait(10)
    stack.run_worker()
    watcher.join(10)
    assert not watcher.is_alive()
    assert live == [1, 2, 3]
    # Connecting late replays everything; reconnecting with the last sequence resumes.
    late = list(
        stack.stub.WatchTask(pb.WatchTaskRequest(task_id=task.id), metadata=stack.md("alice"))
    )
    assert [r.event.sequence for r in late] == [1, 2, 3]
    assert late[-1].event.terminal and late[-1].event.status == pb.TASK_STATUS_SUCCEEDED
    resumed = stack.stub.WatchTask(
        pb.WatchTaskRequest(task_id=task.id, after_sequence=1), metadata=stack.md("alice")
    )
    assert [r.event.sequence for r in resumed] == [2, 3]


def test_uploads_and_stats(stack: Stack) -> None:
    stack.set_up("alice")
    upload = stack.stub.CreateUpload(
        pb.CreateUploadRequest(content_type="image/png", size_bytes=1000, filename="my photo.png"),
        metadata=stack.md("alice"),
    ).upload
    assert upload.key.startswith("alice/uploads/") and upload.key.endswith(".png")
    assert upload.method == "POST" and upload.fields["signature"]
    for bad in (
        pb.CreateUploadRequest(content_type="application/pdf", size_bytes=10),
        pb.CreateUploadRequest(content_type="image/png", size_bytes=10**9),
    ):
        with pytest.raises(grpc.RpcError) as err:
            stack.stub.CreateUpload(bad, metadata=stack.md("alice"))
        assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    stack.create("alice")
    stack.run_worker()
    stats = stack.stub.GetUserStats(pb.GetUserStatsRequest(), metadata=stack.md("alice"))
    assert (stats.generations, stats.succeeded, stats.images, stats.credits_spent) == (1, 1, 1, 1)
    assert stats.by_type[0].type == pb.TASK_TYPE_TEXT_TO_IMAGE


def test_provider_notification_needs_only_the_internal_credential(stack: Stack) -> None:
    request = pb.HandleProviderNotificationRequest(provider="local", body=b"{}")
    with pytest.raises(grpc.RpcError) as err:
        stack.stub.HandleProviderNotification(request, metadata=stack.md(None))
    assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT  # verified by the adapter
    assert error_reason(err.value) == "INVALID_SIGNATURE"
    with pytest.raises(grpc.RpcError) as err:
        stack.stub.HandleProviderNotification(request)
    assert err.value.code() is grpc.StatusCode.UNAUTHENTICATED

"""WatchTaskChanges: every change of any task, as its full view and version, over real gRPC."""

from __future__ import annotations

import dataclasses
import queue
import threading
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from atelier.tasks.v1 import tasks_pb2 as pb
from atelier.tasks.v1 import tasks_pb2_grpc as pb_grpc
from atelier_tasks.application.create_task import CreateTaskCommand
from atelier_tasks.domain.model import TaskType
from atelier_tasks.entrypoints.server import start_server
from tests.tasks.fakes import FakeBillingClient
from tests.tasks.grpc_stack import GrpcStack
from tests.tasks.harness import MakeTasks

WAIT = 20.0


class Follower:
    """A WatchTaskChanges stream read by a thread into a queue."""

    def __init__(self, channel: grpc.Channel, metadata: Any) -> None:
        self.call: Any = pb_grpc.TaskServiceStub(channel).WatchTaskChanges(
            pb.WatchTaskChangesRequest(), metadata=metadata
        )
        self.items: queue.Queue[Any] = queue.Queue()
        self.thread = threading.Thread(target=self._pump, daemon=True)
        self.thread.start()

    def _pump(self) -> None:
        try:
            for item in self.call:
                self.items.put(item)
        except grpc.RpcError as e:
            self.items.put(e)

    def next(self) -> Any:
        return self.items.get(timeout=WAIT)

    def until(self, task_id: str, status: int) -> Any:
        """Messages until the view of ``task_id`` in ``status`` (returned)."""
        while True:
            item = self.next()
            assert not isinstance(item, grpc.RpcError), item
            if item.task_id == task_id and item.task.status == status:
                return item

    def close(self) -> None:
        self.call.cancel()
        self.thread.join(5)


@pytest.fixture
def follower(grpc_stack: GrpcStack) -> Iterator[Follower]:
    f = Follower(grpc_stack.channel, grpc_stack.md(None))
    try:
        yield f
    finally:
        f.close()


def test_every_change_comes_as_the_full_view_with_a_growing_version(
    grpc_stack: GrpcStack, follower: Follower
) -> None:
    assert follower.next().subscribed
    grpc_stack.set_up("u1")
    created = grpc_stack.create("u1")
    pending = follower.until(created.id, pb.TASK_STATUS_PENDING)
    assert pending.task.user_id == "u1" and not pending.deleted
    assert created.version >= pending.task.version >= 1
    grpc_stack.run_worker()
    processing = follower.until(created.id, pb.TASK_STATUS_PROCESSING)
    succeeded = follower.until(created.id, pb.TASK_STATUS_SUCCEEDED)
    assert created.version < processing.task.version < succeeded.task.version
    # Bookkeeping after the result (the capture) is a change too; the last view sent is the
    # one GetTask answers: images with signed URLs, and when they stop working.
    got = grpc_stack.get("u1", created.id)
    while succeeded.task.version < got.version:
        succeeded = follower.until(created.id, pb.TASK_STATUS_SUCCEEDED)
    assert succeeded.task.version == got.version
    assert [i.id for i in succeeded.task.images] == [i.id for i in got.images]
    assert succeeded.task.images and succeeded.task.images[0].url
    assert succeeded.task.HasField("urls_expire_time")
    ttl = grpc_stack.tasks.config.url_ttl_seconds
    signed_at = succeeded.task.update_time.ToSeconds()
    assert succeeded.task.urls_expire_time.ToSeconds() >= signed_at + ttl - 1
    assert not processing.task.HasField("urls_expire_time")  # no images, no expiry


def test_a_task_that_billing_refused_is_sent_as_deleted(
    grpc_stack: GrpcStack, follower: Follower
) -> None:
    assert follower.next().subscribed
    with pytest.raises(grpc.RpcError) as refused:
        grpc_stack.create("poor")  # no billing account: no credits
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    first = follower.next()
    assert first.task.status == pb.TASK_STATUS_PENDING and first.task.user_id == "poor"
    gone = follower.next()
    while not gone.deleted:  # a wake-up may come twice (in-process, then NOTIFY)
        assert gone.task_id == first.task_id and gone.task.version == 1
        gone = follower.next()
    assert gone.task_id == first.task_id and not gone.HasField("task")


def test_the_feed_breaks_when_changes_may_have_been_missed(
    grpc_stack: GrpcStack, follower: Follower
) -> None:
    assert follower.next().subscribed
    grpc_stack.tasks.hub.publish_all()  # what a lost LISTEN connection does
    ended = follower.next()
    assert isinstance(ended, grpc.RpcError)
    assert ended.code() == grpc.StatusCode.UNAVAILABLE
    assert "missed" in (ended.details() or "")


def test_only_the_internal_credential_is_needed(grpc_stack: GrpcStack) -> None:
    wrong = Follower(grpc_stack.channel, (("x-atelier-internal-token", "wrong"),))
    try:
        ended = wrong.next()
        assert isinstance(ended, grpc.RpcError)
        assert ended.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        wrong.close()


def test_a_process_that_does_not_hear_every_change_offers_no_feed(
    grpc_stack: GrpcStack,
) -> None:
    feed = grpc_stack.tasks.use_cases.watch_changes
    feed.config = dataclasses.replace(feed.config, change_feed=False)
    f = Follower(grpc_stack.channel, grpc_stack.md(None))
    try:
        ended = f.next()
        assert isinstance(ended, grpc.RpcError)
        assert ended.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        f.close()


def test_changes_made_by_another_replica_arrive(database_url: str, make_tasks: MakeTasks) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("replicas hear each other through PostgreSQL LISTEN/NOTIFY")
    billing = FakeBillingClient()
    billing.fund("u1", 5)
    replica_a = make_tasks(billing=billing)
    replica_b = make_tasks(billing=billing)
    server = start_server(replica_a, "127.0.0.1:0", run_worker=False)
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    token = replica_a.settings.internal_token.get_secret_value()
    f = Follower(channel, (("x-atelier-internal-token", token),))
    try:
        assert f.next().subscribed
        task_id = replica_b.use_cases.create_task(
            CreateTaskCommand(
                "u1", TaskType.TEXT_TO_IMAGE, {"prompt": "x", "width": 256, "height": 256}
            )
        ).task.id
        f.until(task_id, pb.TASK_STATUS_PENDING)
        replica_b.new_worker("b").run_once()
        done = f.until(task_id, pb.TASK_STATUS_SUCCEEDED)
        assert done.task.images
    finally:
        f.close()
        channel.close()
        server.grpc.stop()

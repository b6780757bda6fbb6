"""WatchTaskChanges: every change of any task, as its full view and version, over real gRPC."""

from __future__ import annotations

import dataclasses
import queue
import threading
import time
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
        self.changes = 0  # change messages taken by ``until``
        self.versions: dict[str, list[int]] = {}  # of the views ``until`` took, by task
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

    def until(self, task_id: str, status: int, version: int = 0) -> Any:
        """Messages until a view of ``task_id`` in ``status`` (at ``version`` or later)."""
        deadline = time.monotonic() + WAIT
        while True:
            assert time.monotonic() < deadline, f"no view of {task_id} in status {status}"
            item = self.next()
            assert not isinstance(item, grpc.RpcError), item
            self.changes += 1 if item.task_id else 0
            if item.task_id == task_id:
                self.versions.setdefault(task_id, []).append(item.task.version)
                if item.task.status == status and item.task.version >= version:
                    return item

    def close(self) -> None:
        self.call.cancel()
        self.thread.join(5)


def last_sent(stack: GrpcStack, task: Any) -> int:
    """The version of the last view of a finished ``task`` the feed sends: its own on SQLite;
    on PostgreSQL the settlement after the result (no event, no NOTIFY) is not sent."""
    version = int(task.version)
    return version - 1 if stack.tasks.hub.feeds_from_notify else version


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
    # Changes close together may come as one (the newest). The capture after the result writes
    # no event: sent from this process on SQLite, not on PostgreSQL (NOTIFY-fed feeds).
    got = grpc_stack.get("u1", created.id)
    succeeded = follower.until(created.id, pb.TASK_STATUS_SUCCEEDED, last_sent(grpc_stack, got))
    assert created.version < succeeded.task.version <= got.version
    # The view GetTask answers: images with signed URLs, and when they stop working.
    assert [i.id for i in succeeded.task.images] == [i.id for i in got.images]
    versions = follower.versions[created.id]
    assert versions == sorted(versions)  # one reader: never an older view after a newer one
    assert succeeded.task.images and succeeded.task.images[0].url
    assert succeeded.task.HasField("urls_expire_time")
    ttl = grpc_stack.tasks.config.url_ttl_seconds
    signed_at = succeeded.task.update_time.ToSeconds()
    assert succeeded.task.urls_expire_time.ToSeconds() >= signed_at + ttl - 1
    assert not pending.task.HasField("urls_expire_time")  # no images, no expiry


def test_a_task_that_billing_refused_is_sent_as_deleted(
    grpc_stack: GrpcStack, follower: Follower
) -> None:
    assert follower.next().subscribed
    with pytest.raises(grpc.RpcError) as refused:
        grpc_stack.create("poor")  # no billing account: no credits
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    gone = follower.next()
    while not gone.deleted:  # its short life as pending may be sent first, or not at all
        assert gone.task.status == pb.TASK_STATUS_PENDING and gone.task.user_id == "poor"
        gone = follower.next()
    assert gone.task_id.startswith("task_") and not gone.HasField("task")
    with pytest.raises(grpc.RpcError):
        grpc_stack.get("poor", gone.task_id)


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
        done = f.until(task_id, pb.TASK_STATUS_SUCCEEDED)  # the result writes an event
        assert done.task.images
    finally:
        f.close()
        channel.close()
        server.grpc.stop()


def test_followers_share_one_reader_and_each_gets_every_change(grpc_stack: GrpcStack) -> None:
    feed = grpc_stack.tasks.use_cases.watch_changes
    reads: list[int] = []
    read = feed.read

    def counted(ids: Any) -> Any:
        reads.append(len(ids))
        return read(ids)

    feed.read = counted  # type: ignore[method-assign]
    first = Follower(grpc_stack.channel, grpc_stack.md(None))
    second = Follower(grpc_stack.channel, grpc_stack.md(None))
    try:
        assert first.next().subscribed and second.next().subscribed
        grpc_stack.set_up("u1")
        task_id = grpc_stack.create("u1").id
        grpc_stack.run_worker()
        final = last_sent(grpc_stack, grpc_stack.get("u1", task_id))
        for follower in (first, second):
            follower.until(task_id, pb.TASK_STATUS_SUCCEEDED, final)
        # Every task read once per batch, and each read sent to both followers.
        assert first.changes == second.changes == sum(reads) > 0
    finally:
        first.close()
        second.close()
    third = Follower(grpc_stack.channel, grpc_stack.md(None))  # after both left: a new reader
    try:
        assert third.next().subscribed
        grpc_stack.set_up("u2")
        task_id = grpc_stack.create("u2").id
        third.until(task_id, pb.TASK_STATUS_PENDING)
    finally:
        third.close()

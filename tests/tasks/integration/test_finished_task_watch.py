"""Issue 9 #7: WatchTask on a finished task ends once what was asked for is replayed."""

from __future__ import annotations

import threading
import time

import grpc

from atelier.tasks.v1 import tasks_pb2 as pb
from tests.tasks.grpc_stack import GrpcStack


def watch(stack: GrpcStack, task_id: str, after: int, within: float = 10.0) -> list[int]:
    """The sequences the stream yields; fails if it has not ended within ``within`` seconds."""
    got: list[int] = []
    call = stack.stub.WatchTask(
        pb.WatchTaskRequest(task_id=task_id, after_sequence=after),
        metadata=stack.md("alice"),
        timeout=within,
    )
    try:
        for reply in call:
            got.append(reply.event.sequence)
    except grpc.RpcError as exc:  # DEADLINE_EXCEEDED: the stream did not end by itself
        raise AssertionError(f"the watch did not end after {got}: {exc.code()}") from exc
    return got


def test_watch_at_or_past_the_terminal_event_ends_at_once(grpc_stack: GrpcStack) -> None:
    stack = grpc_stack
    stack.set_up("alice")
    task = stack.create("alice")
    stack.run_worker()
    assert watch(stack, task.id, 2) == [3]  # before the terminal event: the rest, then the end
    for after in (3, 4, 999, 2**62):
        started = time.monotonic()
        assert watch(stack, task.id, after) == []
        assert time.monotonic() - started < 2.0


def test_watch_of_a_failed_task_past_its_end_ends_at_once(grpc_stack: GrpcStack) -> None:
    stack = grpc_stack
    stack.set_up("alice")
    task = stack.create("alice", sandbox_outcome="fail")
    stack.run_worker()
    assert watch(stack, task.id, 0)[-1] == 3
    assert watch(stack, task.id, 3) == []


def test_watch_after_the_last_event_of_a_running_task_waits_for_the_end(
    grpc_stack: GrpcStack,
) -> None:
    stack = grpc_stack
    stack.set_up("alice")
    task = stack.create("alice")
    seen: list[int] = []
    done = threading.Event()

    def follow() -> None:
        seen.extend(watch(stack, task.id, 1, within=30))
        done.set()

    follower = threading.Thread(target=follow)
    follower.start()
    assert not done.wait(0.5)  # still pending: the stream stays open
    stack.run_worker()
    follower.join(30)
    assert done.is_set() and seen == [2, 3]

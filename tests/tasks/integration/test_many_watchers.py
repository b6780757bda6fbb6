"""Issue 15 #4: open event streams hold no thread. 500 concurrent WatchTask streams on the real
server (port 0, real database) all receive their terminal event, and CreateTask still answers
while they are open (a thread per stream exhausted the 32-thread server at 32 streams)."""

from __future__ import annotations

import asyncio
import json
import threading
from collections import Counter

import grpc
import grpc.aio

from atelier.tasks.v1 import tasks_pb2 as pb
from atelier.tasks.v1 import tasks_pb2_grpc as pb_grpc
from tests.tasks.grpc_stack import GrpcStack

USERS = 50
TASKS_PER_USER = 2
WATCHERS_PER_TASK = 5  # 50 × 2 × 5 = 500 streams
CHANNELS = 10
GUARD_SECONDS = 300  # a failure guard, not a measurement


def _create_request() -> pb.CreateTaskRequest:
    params = {"prompt": "a lighthouse", "width": 256, "height": 256}
    return pb.CreateTaskRequest(
        type=pb.TASK_TYPE_TEXT_TO_IMAGE, params_json=json.dumps(params).encode()
    )


def test_500_watchers_get_their_terminal_event_and_create_still_answers(
    grpc_stack: GrpcStack,
) -> None:
    stack = grpc_stack
    users = [f"watcher-user-{n}" for n in range(USERS)]
    tasks: list[tuple[str, str]] = []
    for user in users:
        stack.set_up(user)
        for _ in range(TASKS_PER_USER):
            tasks.append((user, stack.create(user).id))
    watches = [(user, task_id) for user, task_id in tasks for _ in range(WATCHERS_PER_TASK)]
    address = f"127.0.0.1:{stack.server.port}"

    async def scenario() -> tuple[list[list[pb.TaskEvent]], pb.Task, int]:
        # Separate connections, as many callers would have (not one multiplexed connection).
        channels = [
            grpc.aio.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1)])
            for _ in range(CHANNELS)
        ]
        stubs = [pb_grpc.TaskServiceStub(channel) for channel in channels]
        opened = 0
        all_open = asyncio.Event()

        async def watch(n: int, user: str, task_id: str) -> list[pb.TaskEvent]:
            nonlocal opened
            call = stubs[n % CHANNELS].WatchTask(
                pb.WatchTaskRequest(task_id=task_id), metadata=stack.md(user)
            )
            events: list[pb.TaskEvent] = []
            async for response in call:
                events.append(response.event)
                if len(events) == 1:
                    opened += 1
                    if opened == len(watches):
                        all_open.set()
            return events

        try:
            watchers = [
                asyncio.create_task(watch(n, user, task_id))
                for n, (user, task_id) in enumerate(watches)
            ]
            await asyncio.wait_for(all_open.wait(), GUARD_SECONDS)
            threads_while_watching = threading.active_count()
            # Every stream is open and waiting: a create still gets its answer.
            created = await stubs[0].CreateTask(
                _create_request(), metadata=stack.md(users[0]), timeout=GUARD_SECONDS
            )
            await asyncio.to_thread(stack.run_worker)
            streams = await asyncio.wait_for(asyncio.gather(*watchers), GUARD_SECONDS)
            return streams, created.task, threads_while_watching
        finally:
            for channel in channels:
                await channel.close(None)

    streams, created, threads = asyncio.run(scenario())
    assert created.status == pb.TASK_STATUS_PENDING
    # 500 open streams held no thread each (the server's pool is 32, this process's others few).
    assert threads < 100, threads
    finals = Counter(events[-1].status for events in streams)
    assert finals == Counter({pb.TASK_STATUS_SUCCEEDED: len(watches)})
    for events in streams:
        assert events[-1].terminal
        assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    assert stack.ledger_ok()

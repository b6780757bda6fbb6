"""Stopping the gateway cancels its change-feed follower; a reply that arrives in the same
moment must not swallow that cancellation (Python 3.11's ``asyncio.wait_for`` does: the
follower then runs on and the shutdown waits for it forever)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from atelier.tasks.v1 import tasks_pb2 as pb
from atelier_gateway.adapters.grpc_tasks import GrpcTasksGateway


class FeedCall:
    """A WatchTaskChanges call whose next reply is whatever the test puts in ``reply``."""

    def __init__(self) -> None:
        self.reply: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.waiting = asyncio.Event()
        self.cancelled = False

    def __aiter__(self) -> FeedCall:
        return self

    async def __anext__(self) -> Any:
        self.waiting.set()
        reply = await self.reply
        self.reply = asyncio.get_running_loop().create_future()
        return reply

    def cancel(self) -> bool:
        self.cancelled = True
        return True


class Stub:
    def __init__(self, call: FeedCall) -> None:
        self.call = call

    def WatchTaskChanges(self, request: Any, metadata: Any = None) -> FeedCall:
        return self.call


def test_a_cancel_that_lands_with_a_reply_still_stops_the_feed() -> None:
    async def scenario() -> FeedCall:
        call = FeedCall()
        tasks = GrpcTasksGateway("127.0.0.1:1", "token")
        tasks._stub = Stub(call)  # type: ignore[assignment]

        async def follow() -> None:
            async for _ in tasks.task_changes(idle_seconds=30):
                pass

        follower = asyncio.create_task(follow())
        await call.waiting.wait()
        # The reply and the cancellation in the same turn of the loop.
        call.reply.set_result(pb.WatchTaskChangesResponse(subscribed=True))
        follower.cancel()
        with pytest.raises(asyncio.CancelledError):
            async with asyncio.timeout(5):  # a guard: without the fix it never ends
                await follower
        return call

    call = asyncio.run(scenario())
    assert call.cancelled  # the stream was given up too

"""The in-process hub wakes a watcher waiting on an event loop from another thread, and never
loses a wake-up that comes before the wait (issue 15 #4: streams wait on the loop)."""

from __future__ import annotations

import asyncio
import threading

from atelier_tasks.adapters.events import InProcessEventHub


def test_a_publish_from_another_thread_wakes_an_async_waiter() -> None:
    hub = InProcessEventHub()
    subscription = hub.subscribe("t1")
    waiting = threading.Event()

    def publish() -> None:
        waiting.wait()
        hub.publish("t1")

    async def scenario() -> bool:
        loop = asyncio.get_running_loop()
        publisher = loop.run_in_executor(None, publish)
        waiting.set()
        woke = await subscription.wait_async(timeout=60)  # only a failure guard
        await publisher
        return woke

    assert asyncio.run(scenario()) is True
    subscription.close()
    assert hub.watchers("t1") == 0


def test_a_publish_before_the_wait_is_not_lost() -> None:
    hub = InProcessEventHub()
    subscription = hub.subscribe("t1")

    async def scenario() -> tuple[bool, bool]:
        first = await subscription.wait_async(timeout=0.01)  # registers with the loop
        hub.publish("t1")
        return first, await subscription.wait_async(timeout=60)

    assert asyncio.run(scenario()) == (False, True)


def test_publish_all_wakes_every_watcher_and_others_tasks_do_not() -> None:
    hub = InProcessEventHub()
    a, b = hub.subscribe("t1"), hub.subscribe("t2")
    hub.publish("t3")
    assert not a.wait(0) and not b.wait(0)
    hub.publish_all()
    assert a.wait(0) and b.wait(0)

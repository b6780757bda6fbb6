"""The gateway's task read model: when a kept view may be served, and which view wins."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from atelier_gateway.application import task_views as tv
from atelier_gateway.application.calls import Caller
from atelier_gateway.application.task_reads import (
    FollowTaskChanges,
    ReadTask,
    TaskReadModel,
)
from tests.gateway.fakes import FakeTasksGateway
from tests.support.fakes import FakeClock

ANN = Caller(user_id="ann")
BOB = Caller(user_id="bob")


def view(
    version: int,
    status: tv.TaskStatus = "pending",
    *,
    task_id: str = "t1",
    user: str = "ann",
    urls_expire_at: object = None,
) -> tv.Task:
    images: list[tv.Image] = []
    if urls_expire_at is not None:
        images = [
            tv.Image(
                id="img1",
                task_id=task_id,
                index=0,
                url="http://files/img1?sig",
                thumbnail_url="http://files/img1.thumb?sig",
                width=1,
                height=1,
                content_type="image/png",
                size=1,
                sha256="0" * 64,
                task_type="text_to_image",
                created_at=None,
            )
        ]
    return tv.Task(
        id=task_id,
        type="text_to_image",
        status=status,
        params={},
        input_upload_ids=[],
        cost=1,
        attempts=0,
        error=None,
        error_message=None,
        images=images,
        created_at=None,
        updated_at=None,
        started_at=None,
        finished_at=None,
        deadline_at=None,
        user_id=user,
        version=version,
        urls_expire_at=urls_expire_at,  # type: ignore[arg-type]
    )


class Tasks(FakeTasksGateway):
    """GetTask answers from ``tasks`` and counts; ``gate`` holds an answer back."""

    def __init__(self) -> None:
        super().__init__()
        self.gets = 0
        self.gate: asyncio.Event | None = None

    async def get_task(self, caller: Caller, task_id: str) -> tv.Task:
        self.gets += 1
        task = self.tasks.get(task_id)
        if self.gate is not None:
            await self.gate.wait()
        if task is None or task.user_id != caller.user_id:
            raise LookupError("not found")
        return task


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def model(clock: FakeClock) -> TaskReadModel:
    m = TaskReadModel(clock=clock, size=100)
    m.connected()
    return m


def read(tasks: Tasks, model: TaskReadModel, caller: Caller = ANN) -> tv.Task:
    return asyncio.run(ReadTask(tasks=tasks, model=model)(caller, "t1")).task


def test_a_kept_view_is_served_and_updated_by_the_feed(model: TaskReadModel) -> None:
    tasks = Tasks()
    tasks.tasks["t1"] = view(1)
    assert read(tasks, model).version == 1 and tasks.gets == 1
    assert read(tasks, model).version == 1 and tasks.gets == 1  # served from memory
    model.apply(tv.TaskChange.of(view(3, "processing")))
    got = read(tasks, model)
    assert (got.status, got.version, tasks.gets) == ("processing", 3, 1)


def test_an_older_view_never_replaces_a_newer_one(model: TaskReadModel) -> None:
    tasks = Tasks()
    tasks.tasks["t1"] = view(2, "processing")
    read(tasks, model)
    model.apply(tv.TaskChange.of(view(1)))  # late, out of order
    assert read(tasks, model).version == 2
    model.apply(tv.TaskChange.of(view(4, "succeeded")))
    model.apply(tv.TaskChange.of(view(3, "processing")))
    assert read(tasks, model).status == "succeeded"


def test_a_fill_that_raced_with_a_newer_change_is_not_kept(model: TaskReadModel) -> None:
    tasks = Tasks()
    tasks.tasks["t1"] = view(1)  # what GetTask read ...
    tasks.gate = asyncio.Event()

    async def scenario() -> tv.Task:
        reader = ReadTask(tasks=tasks, model=model)
        pending = asyncio.create_task(reader(ANN, "t1"))
        await asyncio.sleep(0)  # the call is in flight
        # ... while the feed delivers the next change of a task this process does not keep.
        model.apply(tv.TaskChange.of(view(2, "processing")))
        assert tasks.gate is not None
        tasks.gate.set()
        return (await pending).task

    assert asyncio.run(scenario()).version == 1  # that caller gets what it asked for ...
    assert len(model) == 0  # ... but it is not kept
    tasks.tasks["t1"] = view(2, "processing")
    tasks.gate = None
    assert read(tasks, model).version == 2


def test_another_users_task_is_never_served_from_memory(model: TaskReadModel) -> None:
    tasks = Tasks()
    tasks.tasks["t1"] = view(1, user="ann")
    read(tasks, model)
    with pytest.raises(LookupError):
        read(tasks, model, BOB)  # the tasks service answers: not found
    assert read(tasks, model).user_id == "ann"


def test_nothing_is_trusted_while_the_feed_is_down(model: TaskReadModel) -> None:
    tasks = Tasks()
    tasks.tasks["t1"] = view(1)
    read(tasks, model)
    model.disconnected()
    assert len(model) == 0
    read(tasks, model)
    read(tasks, model)
    assert tasks.gets == 3  # every read asks, none is kept
    model.connected()
    read(tasks, model)
    read(tasks, model)
    assert tasks.gets == 4


def test_a_fill_begun_before_a_reconnect_is_not_kept(model: TaskReadModel) -> None:
    ticket = model.begin("t1")
    model.disconnected()  # changes may be missed from here ...
    model.connected()  # ... until here: the answer may be older than a missed change
    assert model.end(ticket, view(1)) is None
    assert model.lookup("t1") is None


def test_a_deleted_task_disappears_and_is_not_filled_again(model: TaskReadModel) -> None:
    tasks = Tasks()
    tasks.tasks["t1"] = view(1)
    read(tasks, model)
    model.apply(tv.TaskChange.deleted("t1"))
    assert model.lookup("t1") is None
    ticket = model.begin("t1")
    model.apply(tv.TaskChange.deleted("t1"))
    assert model.end(ticket, view(1)) is None
    assert model.lookup("t1") is None


def test_views_with_signed_urls_are_served_only_in_the_first_half_of_their_life(
    clock: FakeClock, model: TaskReadModel
) -> None:
    tasks = Tasks()
    tasks.tasks["t1"] = view(4, "succeeded", urls_expire_at=clock.now() + timedelta(minutes=10))
    read(tasks, model)
    clock.advance(minutes=4, seconds=59)
    read(tasks, model)
    assert tasks.gets == 1
    clock.advance(seconds=1)  # 5 of 10 minutes used: re-signed by GetTask
    tasks.tasks["t1"] = dataclasses.replace(
        tasks.tasks["t1"], urls_expire_at=clock.now() + timedelta(minutes=10)
    )
    got = read(tasks, model)
    assert tasks.gets == 2 and got.urls_expire_at == clock.now() + timedelta(minutes=10)
    read(tasks, model)
    assert tasks.gets == 2
    # URLs that expire at once, or of unknown life, are never kept.
    for expiry in (clock.now(), None):
        tasks.tasks["t1"] = view(5, "succeeded", urls_expire_at=clock.now())
        tasks.tasks["t1"] = dataclasses.replace(tasks.tasks["t1"], urls_expire_at=expiry)
        model.disconnected()
        model.connected()
        before = tasks.gets
        read(tasks, model)
        read(tasks, model)
        assert tasks.gets == before + 2


def test_an_evicted_view_still_beats_an_older_fill_in_flight(clock: FakeClock) -> None:
    model = TaskReadModel(clock=clock, size=1)
    model.connected()
    ticket = model.begin("t1")  # an answer at version 1 is on its way
    other = model.begin("t2")
    assert model.end(other, view(7, task_id="t2")) is not None
    first = model.begin("t1")
    assert model.end(first, view(2, "processing")) is not None  # t2 evicted
    third = model.begin("t2")
    assert model.end(third, view(7, task_id="t2")) is not None  # t1 (version 2) evicted
    assert model.end(ticket, view(1)) is None


def test_size_zero_keeps_nothing(clock: FakeClock) -> None:
    model = TaskReadModel(clock=clock, size=0)
    model.connected()
    tasks = Tasks()
    tasks.tasks["t1"] = view(1)
    read(tasks, model)
    read(tasks, model)
    assert tasks.gets == 2 and not model.enabled


def test_an_event_told_to_a_client_drops_a_view_that_does_not_show_it(
    model: TaskReadModel,
) -> None:
    tasks = Tasks()
    tasks.tasks["t1"] = view(2, "processing")
    read(tasks, model)
    event = tv.TaskEvent("t1", 3, "succeeded", None, 0, True, None)
    model.forget_if_behind(event)
    assert model.lookup("t1") is None


class Feed(FakeTasksGateway):
    """A change feed scripted as a list of runs; each run ends by raising, but the last
    stays open."""

    def __init__(self, runs: list[list[tv.TaskChange | None]]) -> None:
        super().__init__()
        self.runs = runs
        self.done = asyncio.Event()

    async def task_changes(self, idle_seconds: float) -> AsyncIterator[tv.TaskChange | None]:
        for item in self.runs.pop(0):
            yield item
        if not self.runs:
            self.done.set()
            await asyncio.Event().wait()
        raise ConnectionError("the stream broke")


def test_the_follower_reconnects_and_trusts_only_what_came_after(clock: FakeClock) -> None:
    model = TaskReadModel(clock=clock, size=10)
    states: list[tuple[bool, int]] = []

    async def sleep(_: float) -> None:
        states.append((model.live, len(model)))

    feed = Feed(
        [
            [None, tv.TaskChange.of(view(1))],
            [],  # broke before subscribing
            [None],
        ]
    )
    follower = FollowTaskChanges(tasks=feed, model=model, sleep=sleep)

    async def scenario() -> None:
        run = asyncio.create_task(follower.run())
        await feed.done.wait()
        assert model.live and follower.connections == 2
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await run

    asyncio.run(scenario())
    assert states == [(False, 0), (False, 0)]  # down (and empty) between the runs
    assert not model.live


def test_an_outage_is_logged_once_and_a_new_one_again(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A tasks service that stays down is one warning, not one per retry; after the feed was
    back, the next break is a new outage and warned about again."""
    model = TaskReadModel(clock=clock, size=10)

    async def sleep(_: float) -> None:
        pass

    feed = Feed([[], [], [], [None], [], [None]])
    follower = FollowTaskChanges(tasks=feed, model=model, sleep=sleep)

    async def scenario() -> None:
        run = asyncio.create_task(follower.run())
        await feed.done.wait()
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await run

    with caplog.at_level("DEBUG", logger="atelier.gateway.task_reads"):
        asyncio.run(scenario())
    levels = [r.levelname for r in caplog.records if r.name == "atelier.gateway.task_reads"]
    assert levels == ["WARNING", "DEBUG", "DEBUG", "WARNING", "DEBUG"]

"""The saga and worker on the real SQL repository (SQLite and PostgreSQL), real local adapters."""

from __future__ import annotations

import io
import threading
from urllib.parse import parse_qs, unquote, urlparse

import pytest
import sqlalchemy as sa
from PIL import Image

from atelier_tasks.adapters.db.migrate import upgrade
from atelier_tasks.adapters.local_storage import LocalObjectStorage
from atelier_tasks.application.cancel_task import CancelTaskCommand
from atelier_tasks.application.create_task import CreateTaskCommand
from atelier_tasks.application.queries import (
    GetTaskQuery,
    GetUserStatsQuery,
    ListImagesQuery,
    ListTasksQuery,
)
from atelier_tasks.application.watch_task import WatchTaskQuery
from atelier_tasks.domain.errors import (
    DailyLimitReached,
    InsufficientCredits,
    RequestIdConflict,
    TaskNotFound,
)
from atelier_tasks.domain.model import HoldState, TaskStatus, TaskType
from tests.tasks.fakes import FakeBillingClient, clock_at_start
from tests.tasks.harness import MakeTasks


@pytest.fixture
def billing() -> FakeBillingClient:
    fake = FakeBillingClient()
    fake.fund("u1", 20)
    return fake


def png(colour: tuple[int, int, int] = (200, 30, 30), size: tuple[int, int] = (80, 60)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, format="PNG")
    return out.getvalue()


def test_migrations_are_idempotent(make_tasks: MakeTasks, billing: FakeBillingClient) -> None:
    app = make_tasks(billing=billing)
    upgrade(app.engine)
    names = set(sa.inspect(app.engine).get_table_names())
    assert {"tasks", "task_events", "task_images", "alembic_version_tasks"} <= names


def test_text_to_image_end_to_end_on_sql(make_tasks: MakeTasks, billing: FakeBillingClient) -> None:
    tasks = make_tasks(billing=billing)
    view = tasks.use_cases.create_task(
        CreateTaskCommand(
            "u1",
            TaskType.TEXT_TO_IMAGE,
            {"prompt": "a red fox", "width": 320, "height": 256, "seed": 7},
        )
    )
    worker = tasks.new_worker("w1")
    assert worker.run_once().dispatched == 1
    done = tasks.use_cases.get_task(GetTaskQuery("u1", view.task.id))
    assert done.task.status is TaskStatus.SUCCEEDED
    assert done.task.hold_state is HoldState.CAPTURED
    (image,) = done.images
    assert (image.image.width, image.image.height) == (320, 256)
    assert image.image.content_type == "image/png" and len(image.image.sha256) == 64
    # The signed URL verifies, and tampering or expiry does not.
    storage = tasks.storage
    assert isinstance(storage, LocalObjectStorage)
    url = urlparse(image.url)
    key = unquote(url.path.split("/files/", 1)[1])
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    assert storage.verify_download(key, query["expires"], query["signature"])
    assert not storage.verify_download(key + "x", query["expires"], query["signature"])
    assert not storage.verify_download(key, str(int(query["expires"]) + 1), query["signature"])
    with Image.open(io.BytesIO(storage.get(key))) as img:
        assert img.size == (320, 256)
    thumb_key = unquote(urlparse(image.thumbnail_url).path.split("/files/", 1)[1])
    with Image.open(io.BytesIO(storage.get(thumb_key))) as img:
        assert max(img.size) <= 256
    with tasks.uow() as uow:
        events = uow.tasks.events_after(view.task.id, 0)
    assert [(e.sequence, e.status) for e in events] == [
        (1, TaskStatus.PENDING),
        (2, TaskStatus.PROCESSING),
        (3, TaskStatus.SUCCEEDED),
    ]


def test_basic_clean_and_pose12_on_sql(make_tasks: MakeTasks, billing: FakeBillingClient) -> None:
    tasks = make_tasks(billing=billing)
    tasks.storage.put("u1/uploads/a/photo.png", png(), "image/png")
    clean = tasks.use_cases.create_task(
        CreateTaskCommand("u1", TaskType.BASIC_CLEAN, {"size": 256}, ["u1/uploads/a/photo.png"])
    )
    pose = tasks.use_cases.create_task(
        CreateTaskCommand(
            "u1",
            TaskType.MODEL_POSE12,
            {"scene": "street", "category": "hoodie"},
            ["u1/uploads/a/photo.png"],
        )
    )
    tasks.new_worker("w1").run_once()
    clean_view = tasks.use_cases.get_task(GetTaskQuery("u1", clean.task.id))
    assert [(i.image.width, i.image.height) for i in clean_view.images] == [(256, 256)]
    pose_view = tasks.use_cases.get_task(GetTaskQuery("u1", pose.task.id))
    assert pose_view.task.status is TaskStatus.SUCCEEDED
    assert len({i.image.sha256 for i in pose_view.images}) == 12
    assert billing.balances["u1"] == 20 - 1 - 4
    images, token = tasks.use_cases.list_images(ListImagesQuery("u1", 5, ""))
    assert len(images) == 5 and token
    rest, _ = tasks.use_cases.list_images(ListImagesQuery("u1", 50, token))
    assert len(images) + len(rest) == 13
    stats = tasks.use_cases.user_stats(GetUserStatsQuery("u1"))
    assert stats.images == 13 and stats.credits_spent == 5


def test_sandbox_failure_releases(make_tasks: MakeTasks, billing: FakeBillingClient) -> None:
    tasks = make_tasks(billing=billing)
    view = tasks.use_cases.create_task(
        CreateTaskCommand("u1", TaskType.TEXT_TO_IMAGE, {"prompt": "x", "sandbox_outcome": "fail"})
    )
    tasks.new_worker("w1").run_once()
    task = tasks.use_cases.get_task(GetTaskQuery("u1", view.task.id)).task
    assert task.status is TaskStatus.FAILED and task.error_reason == "PROVIDER_FAILED"
    assert task.hold_state is HoldState.RELEASED
    assert billing.balances["u1"] == 20


def test_insufficient_credits_leaves_no_row(
    make_tasks: MakeTasks, billing: FakeBillingClient
) -> None:
    tasks = make_tasks(billing=billing)
    with pytest.raises(InsufficientCredits):
        tasks.use_cases.create_task(
            CreateTaskCommand("poor", TaskType.TEXT_TO_IMAGE, {"prompt": "x"})
        )
    with tasks.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM tasks")).scalar_one() == 0
        assert conn.execute(sa.text("SELECT count(*) FROM task_events")).scalar_one() == 0


def test_concurrent_creates_with_one_request_id_make_one_task(
    make_tasks: MakeTasks, billing: FakeBillingClient
) -> None:
    tasks = make_tasks(billing=billing)
    results: list[str] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(6)

    def create() -> None:
        barrier.wait()
        try:
            view = tasks.use_cases.create_task(
                CreateTaskCommand("u1", TaskType.TEXT_TO_IMAGE, {"prompt": "same"}, request_id="k1")
            )
            results.append(view.task.id)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=create) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(set(results)) == 1
    assert billing.balances["u1"] == 19
    with pytest.raises(RequestIdConflict):
        tasks.use_cases.create_task(
            CreateTaskCommand("u1", TaskType.TEXT_TO_IMAGE, {"prompt": "other"}, request_id="k1")
        )


def test_timeout_on_sql(make_tasks: MakeTasks, billing: FakeBillingClient) -> None:
    clock = clock_at_start()
    tasks = make_tasks(billing=billing, clock=clock)
    view = tasks.use_cases.create_task(
        CreateTaskCommand("u1", TaskType.TEXT_TO_IMAGE, {"prompt": "slow"})
    )
    clock.advance(minutes=11)
    report = tasks.new_worker("w1").run_once()
    assert report.timed_out == 1 and report.dispatched == 0
    task = tasks.use_cases.get_task(GetTaskQuery("u1", view.task.id)).task
    assert task.status is TaskStatus.FAILED and task.error_reason == "TIMEOUT"
    assert billing.balances["u1"] == 20


def test_isolation_on_sql(make_tasks: MakeTasks, billing: FakeBillingClient) -> None:
    tasks = make_tasks(billing=billing)
    view = tasks.use_cases.create_task(
        CreateTaskCommand("u1", TaskType.TEXT_TO_IMAGE, {"prompt": "mine"})
    )
    tasks.new_worker("w1").run_once()
    for call in (
        lambda: tasks.use_cases.get_task(GetTaskQuery("u2", view.task.id)),
        lambda: tasks.use_cases.cancel_task(CancelTaskCommand("u2", view.task.id)),
        lambda: list(
            tasks.use_cases.watch(WatchTaskQuery("u2", view.task.id, 0), stop=lambda: True)
        ),
    ):
        with pytest.raises(TaskNotFound):
            call()
    assert tasks.use_cases.list_tasks(ListTasksQuery("u2", 10, ""))[0] == []
    assert tasks.use_cases.list_images(ListImagesQuery("u2", 10, ""))[0] == []
    assert tasks.use_cases.user_stats(GetUserStatsQuery("u2")).generations == 0


def test_list_tasks_pages_and_filters_on_sql(
    make_tasks: MakeTasks, billing: FakeBillingClient
) -> None:
    clock = clock_at_start()
    tasks = make_tasks(billing=billing, clock=clock)
    created = []
    for i in range(7):
        created.append(
            tasks.use_cases.create_task(
                CreateTaskCommand("u1", TaskType.TEXT_TO_IMAGE, {"prompt": f"p{i}"})
            ).task.id
        )
        if i % 2:
            clock.advance(seconds=1)  # some share a timestamp: the id breaks the tie
    tasks.use_cases.cancel_task(CancelTaskCommand("u1", created[3]))
    seen: list[str] = []
    token = ""
    while True:
        page, token = tasks.use_cases.list_tasks(ListTasksQuery("u1", 3, token))
        seen += [v.task.id for v in page]
        if not token:
            break
    assert sorted(seen) == sorted(created) and len(seen) == 7
    stamps = [tasks.use_cases.get_task(GetTaskQuery("u1", t)).task.created_at for t in seen]
    assert stamps == sorted(stamps, reverse=True)
    cancelled, _ = tasks.use_cases.list_tasks(
        ListTasksQuery("u1", 10, "", status=TaskStatus.CANCELLED)
    )
    assert [v.task.id for v in cancelled] == [created[3]]
    none, _ = tasks.use_cases.list_tasks(
        ListTasksQuery("u1", 10, "", task_type=TaskType.BASIC_CLEAN)
    )
    assert none == []


def test_daily_limit_holds_under_concurrent_creates(
    make_tasks: MakeTasks, billing: FakeBillingClient
) -> None:
    tasks = make_tasks({"TASKS_DAILY_LIMIT": 3}, billing=billing)
    barrier = threading.Barrier(8)
    outcomes: list[str] = []

    def create(i: int) -> None:
        barrier.wait()
        try:
            tasks.use_cases.create_task(
                CreateTaskCommand("u1", TaskType.TEXT_TO_IMAGE, {"prompt": f"p{i}"})
            )
            outcomes.append("created")
        except DailyLimitReached:
            outcomes.append("limited")

    threads = [threading.Thread(target=create, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["created"] * 3 + ["limited"] * 5
    assert billing.balances["u1"] == 20 - 3


def test_metrics_count_outcomes_and_provider_calls(
    make_tasks: MakeTasks, billing: FakeBillingClient
) -> None:
    from prometheus_client import generate_latest

    tasks = make_tasks(billing=billing)
    for params in ({"prompt": "ok"}, {"prompt": "no", "sandbox_outcome": "fail"}):
        tasks.use_cases.create_task(CreateTaskCommand("u1", TaskType.TEXT_TO_IMAGE, params))
    tasks.new_worker("w1").run_once()
    text = generate_latest(tasks.metrics.registry).decode()
    assert (
        'atelier_tasks_finished_total{reason="",status="succeeded",type="text_to_image"} 1.0'
        in text
    )
    assert (
        'atelier_tasks_finished_total{reason="PROVIDER_FAILED",status="failed",'
        'type="text_to_image"} 1.0' in text
    )
    assert (
        'atelier_tasks_provider_call_seconds_count{call="submit",outcome="succeeded",'
        'provider="local"} 1.0' in text
    )

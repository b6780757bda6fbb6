"""The create saga, the worker and the read side on Fake* ports."""

from __future__ import annotations

import threading

import pytest

from atelier_ports.errors import InvalidNotification
from atelier_ports.paging import InvalidPageToken
from atelier_tasks.application.cancel_task import CancelTaskCommand
from atelier_tasks.application.create_task import CreateTaskCommand
from atelier_tasks.application.notifications import HandleNotificationCommand
from atelier_tasks.application.ports.generation import (
    GenerationResult,
    GenerationState,
    ProviderStyle,
)
from atelier_tasks.application.queries import (
    GetTaskQuery,
    GetUserStatsQuery,
    ListImagesQuery,
    ListTasksQuery,
)
from atelier_tasks.application.watch_task import WatchTaskQuery
from atelier_tasks.domain.errors import (
    BillingUnavailable,
    DailyLimitReached,
    InsufficientCredits,
    InvalidParams,
    RequestIdConflict,
    TaskNotCancellable,
    TaskNotFound,
)
from atelier_tasks.domain.model import HoldState, TaskStatus, TaskType
from tests.tasks.fakes import FakeProvider, failed, succeeded, unavailable
from tests.tasks.harness import Harness


@pytest.fixture
def h() -> Harness:
    harness = Harness()
    harness.billing.fund("u1", 10)
    return harness


def test_create_holds_then_worker_succeeds_and_captures(h: Harness) -> None:
    task_id = h.create()
    assert h.billing.balances["u1"] == 9
    assert h.task(task_id).hold_state is HoldState.HELD
    assert h.worker.run_once().dispatched == 1
    task = h.use_cases.get_task(GetTaskQuery("u1", task_id))
    assert task.task.status is TaskStatus.SUCCEEDED
    assert task.task.hold_state is HoldState.CAPTURED
    assert h.billing.holds[task_id].status == "captured"
    assert len(task.images) == 1
    image = task.images[0].image
    assert image.key.startswith(f"u1/tasks/{task_id}/") and image.sha256
    assert image.thumbnail_key in h.storage.objects
    assert h.provider.submitted == [task_id]


def test_insufficient_credits_creates_nothing_and_never_calls_provider(h: Harness) -> None:
    h.billing.balances["u1"] = 0
    with pytest.raises(InsufficientCredits):
        h.create()
    assert h.repository.tasks == {}
    h.worker.run_once()
    assert h.provider.submitted == []


def test_provider_failure_fails_and_releases(h: Harness) -> None:
    task_id = h.create()
    h.provider.script[task_id] = [failed("nope")]
    h.worker.run_once()
    task = h.task(task_id)
    assert task.status is TaskStatus.FAILED and task.error_reason == "PROVIDER_FAILED"
    assert task.hold_state is HoldState.RELEASED
    assert h.billing.balances["u1"] == 10


def test_transient_errors_are_retried_with_backoff_then_succeed(h: Harness) -> None:
    task_id = h.create()
    h.provider.script[task_id] = [unavailable(), failed("busy", transient=True)]
    h.worker.run_once()
    assert h.task(task_id).status is TaskStatus.PROCESSING
    h.worker.run_once()  # backoff not elapsed: nothing happens
    assert h.provider.submitted == [task_id]
    h.clock.advance(seconds=2)
    h.worker.run_once()
    h.clock.advance(seconds=4)
    h.worker.run_once()
    task = h.task(task_id)
    assert task.status is TaskStatus.SUCCEEDED and task.attempts == 3
    assert h.billing.holds[task_id].status == "captured"


def test_transient_errors_are_bounded(h: Harness) -> None:
    task_id = h.create()
    h.provider.script[task_id] = [unavailable(), unavailable(), unavailable(), unavailable()]
    for _ in range(5):
        h.worker.run_once()
        h.clock.advance(seconds=10)
    task = h.task(task_id)
    assert task.status is TaskStatus.FAILED and task.error_reason == "RETRIES_EXHAUSTED"
    assert len(h.provider.submitted) == h.config.max_attempts
    assert h.billing.balances["u1"] == 10


def test_timeout_fails_and_releases(h: Harness) -> None:
    polling = FakeProvider("local", ProviderStyle.POLLING)
    h = Harness(provider=polling, billing=h.billing)
    task_id = h.create()
    h.worker.run_once()
    assert h.task(task_id).status is TaskStatus.PROCESSING
    h.clock.advance(minutes=11)
    assert h.worker.run_once().timed_out == 1
    task = h.task(task_id)
    assert task.status is TaskStatus.FAILED and task.error_reason == "TIMEOUT"
    assert polling.cancelled == [f"job-{task_id}"]
    assert h.billing.balances["u1"] == 10


def test_polling_backs_off_and_stops_after_terminal(h: Harness) -> None:
    polling = FakeProvider("local", ProviderStyle.POLLING)
    h = Harness(provider=polling, billing=h.billing)
    task_id = h.create()
    h.worker.run_once()
    job = f"job-{task_id}"
    h.worker.run_once()
    assert polling.polled == []  # not due yet
    h.clock.advance(seconds=2)
    h.worker.run_once()
    assert polling.polled == [job]
    h.clock.advance(seconds=2)
    h.worker.run_once()
    assert polling.polled == [job]  # backoff doubled to 4 s
    h.clock.advance(seconds=2)
    polling.poll_script[job] = [succeeded(task_id, 2)]
    h.worker.run_once()
    assert h.task(task_id).status is TaskStatus.SUCCEEDED
    for _ in range(3):
        h.clock.advance(minutes=1)
        h.worker.run_once()
    assert polling.polled == [job, job]
    assert len(h.repository.images[task_id]) == 2
    # Reading never calls a provider.
    h.use_cases.get_task(GetTaskQuery("u1", task_id))
    h.use_cases.list_tasks(ListTasksQuery("u1", 10, ""))
    assert polling.polled == [job, job]


def test_cancel_pending_releases_and_is_never_dispatched(h: Harness) -> None:
    task_id = h.create()
    view = h.use_cases.cancel_task(CancelTaskCommand("u1", task_id))
    assert view.task.status is TaskStatus.CANCELLED
    assert view.task.hold_state is HoldState.RELEASED
    h.worker.run_once()
    assert h.provider.submitted == []
    assert h.billing.balances["u1"] == 10
    with pytest.raises(TaskNotCancellable):
        h.use_cases.cancel_task(CancelTaskCommand("u1", task_id))


def test_cancel_racing_with_a_result_discards_the_result(h: Harness) -> None:
    task_id = h.create()
    gate, release = threading.Event(), threading.Event()
    original = h.provider.submit

    def slow_submit(request):  # type: ignore[no-untyped-def]
        gate.set()
        release.wait(5)
        return original(request)

    h.provider.submit = slow_submit  # type: ignore[method-assign]
    worker = threading.Thread(target=h.worker.run_once)
    worker.start()
    assert gate.wait(5)
    h.use_cases.cancel_task(CancelTaskCommand("u1", task_id))
    release.set()
    worker.join(5)
    task = h.task(task_id)
    assert task.status is TaskStatus.CANCELLED and task.hold_state is HoldState.RELEASED
    assert h.repository.images.get(task_id, []) == []
    assert not [k for k in h.storage.objects if task_id in k]  # stored outputs were removed
    assert h.billing.balances["u1"] == 10


def test_billing_down_at_create_abandons_the_task_and_it_never_runs(h: Harness) -> None:
    h.billing.down = True
    with pytest.raises(BillingUnavailable):
        h.create()
    (task_id,) = h.repository.tasks
    task = h.task(task_id)
    assert task.status is TaskStatus.FAILED and task.error_reason == "BILLING_UNAVAILABLE"
    h.billing.down = False
    h.clock.advance(seconds=31)
    h.worker.run_once()
    h.worker.run_once()
    task = h.task(task_id)
    assert task.status is TaskStatus.FAILED and task.hold_state is HoldState.RELEASED
    assert h.provider.submitted == []
    assert h.billing.balances["u1"] == 10


def test_crash_after_hold_before_marking_it_is_released_and_never_runs(h: Harness) -> None:
    original = h.repository.save
    h.repository.save = lambda *a, **k: (_ for _ in ()).throw(SystemExit("killed"))  # type: ignore[method-assign]
    with pytest.raises(SystemExit):
        h.create()
    h.repository.save = original  # type: ignore[method-assign]
    (task_id,) = h.repository.tasks
    assert h.billing.holds[task_id].status == "held"
    h.worker.run_once()
    assert h.task(task_id).hold_state is HoldState.PLACING  # within the grace period
    h.clock.advance(seconds=31)
    h.worker.run_once()
    h.worker.run_once()
    task = h.task(task_id)
    assert task.status is TaskStatus.FAILED and task.error_reason == "CREATE_INTERRUPTED"
    assert task.hold_state is HoldState.RELEASED
    assert h.provider.submitted == []
    assert h.billing.balances["u1"] == 10
    assert [c for c in h.billing.calls if c[0] == "hold"] == [("hold", task_id)]


def test_crash_mid_dispatch_is_redispatched_after_the_lease(h: Harness) -> None:
    task_id = h.create()

    def crash(request):  # type: ignore[no-untyped-def]
        raise SystemExit("killed mid-dispatch")

    original = h.provider.submit
    h.provider.submit = crash  # type: ignore[method-assign]
    with pytest.raises(SystemExit):
        h.worker.run_once()
    h.provider.submit = original  # type: ignore[method-assign]
    assert h.task(task_id).status is TaskStatus.PROCESSING
    h.worker.run_once()
    assert h.provider.submitted == []  # still leased by the dead worker
    h.clock.advance(minutes=6)
    h.worker.run_once()
    task = h.task(task_id)
    assert task.status is TaskStatus.SUCCEEDED and task.attempts == 2
    assert h.billing.holds[task_id].status == "captured"


def test_crash_before_capture_is_settled_by_the_sweep(h: Harness) -> None:
    task_id = h.create()
    h.billing.down = True
    h.worker.run_once()
    task = h.task(task_id)
    assert task.status is TaskStatus.SUCCEEDED and task.hold_state is HoldState.HELD
    h.billing.down = False
    assert h.worker.run_once().settled == 1
    assert h.task(task_id).hold_state is HoldState.CAPTURED
    assert h.billing.holds[task_id].status == "captured"


def test_request_id_makes_create_idempotent(h: Harness) -> None:
    cmd = CreateTaskCommand("u1", TaskType.TEXT_TO_IMAGE, {"prompt": "a"}, request_id="r1")
    first = h.use_cases.create_task(cmd)
    again = h.use_cases.create_task(cmd)
    assert again.task.id == first.task.id
    assert len(h.repository.tasks) == 1 and h.billing.balances["u1"] == 9
    with pytest.raises(RequestIdConflict):
        h.use_cases.create_task(
            CreateTaskCommand("u1", TaskType.TEXT_TO_IMAGE, {"prompt": "b"}, request_id="r1")
        )
    # The key is per user.
    h.billing.fund("u2", 1)
    other = h.use_cases.create_task(
        CreateTaskCommand("u2", TaskType.TEXT_TO_IMAGE, {"prompt": "a"}, request_id="r1")
    )
    assert other.task.id != first.task.id


def test_daily_limit(h: Harness) -> None:
    h = Harness(billing=h.billing, config=type(h.config)(daily_limit=2))
    h.create()
    h.create()
    with pytest.raises(DailyLimitReached):
        h.create()
    h.clock.advance(days=1)
    h.create()


def test_inputs_must_exist_in_storage(h: Harness) -> None:
    with pytest.raises(InvalidParams):
        h.use_cases.create_task(
            CreateTaskCommand("u1", TaskType.BASIC_CLEAN, {}, ["u1/uploads/missing.png"])
        )
    assert h.billing.calls == []


def test_isolation_between_users(h: Harness) -> None:
    task_id = h.create()
    h.worker.run_once()
    with pytest.raises(TaskNotFound):
        h.use_cases.get_task(GetTaskQuery("u2", task_id))
    with pytest.raises(TaskNotFound):
        h.use_cases.cancel_task(CancelTaskCommand("u2", task_id))
    with pytest.raises(TaskNotFound):
        list(h.use_cases.watch(WatchTaskQuery("u2", task_id, 0), stop=lambda: True))
    assert h.use_cases.list_tasks(ListTasksQuery("u2", 10, ""))[0] == []
    assert h.use_cases.list_images(ListImagesQuery("u2", 10, ""))[0] == []


def test_list_pages_newest_first_with_filters(h: Harness) -> None:
    ids = []
    for i in range(5):
        ids.append(h.create(prompt=f"p{i}"))
        h.clock.advance(seconds=1)
    h.use_cases.cancel_task(CancelTaskCommand("u1", ids[1]))
    page1, token = h.use_cases.list_tasks(ListTasksQuery("u1", 2, ""))
    page2, token2 = h.use_cases.list_tasks(ListTasksQuery("u1", 2, token))
    page3, token3 = h.use_cases.list_tasks(ListTasksQuery("u1", 2, token2))
    assert [v.task.id for v in page1 + page2 + page3] == ids[::-1]
    assert token3 == ""
    cancelled, _ = h.use_cases.list_tasks(ListTasksQuery("u1", 10, "", status=TaskStatus.CANCELLED))
    assert [v.task.id for v in cancelled] == [ids[1]]
    with pytest.raises(InvalidPageToken):
        h.use_cases.list_tasks(ListTasksQuery("u1", 2, "garbage!"))


def test_watch_replays_then_ends_after_terminal(h: Harness) -> None:
    task_id = h.create()
    h.worker.run_once()
    events = list(h.use_cases.watch(WatchTaskQuery("u1", task_id, 0), stop=lambda: False))
    assert [e.sequence for e in events] == [1, 2, 3]
    assert [e.status for e in events] == [
        TaskStatus.PENDING,
        TaskStatus.PROCESSING,
        TaskStatus.SUCCEEDED,
    ]
    resumed = list(h.use_cases.watch(WatchTaskQuery("u1", task_id, 2), stop=lambda: False))
    assert [e.sequence for e in resumed] == [3]


def test_watch_follows_live(h: Harness) -> None:
    task_id = h.create()
    seen: list[int] = []
    first = threading.Event()

    def watch() -> None:
        for event in h.use_cases.watch(WatchTaskQuery("u1", task_id, 0), stop=lambda: False):
            seen.append(event.sequence)
            first.set()

    thread = threading.Thread(target=watch)
    thread.start()
    assert first.wait(5)
    h.worker.run_once()
    thread.join(5)
    assert not thread.is_alive()
    assert seen == [1, 2, 3]


def test_stats(h: Harness) -> None:
    ok = h.create()
    h.worker.run_once()
    bad = h.create(sandbox_outcome="fail")
    h.provider.script[bad] = [failed()]
    h.worker.run_once()
    stats = h.use_cases.user_stats(GetUserStatsQuery("u1"))
    assert (stats.generations, stats.succeeded, stats.failed) == (2, 1, 1)
    assert stats.images == 1 and stats.credits_spent == 1
    assert stats.months[0].month == "2026-11" and stats.months[0].credits_spent == 1
    assert stats.by_type == {TaskType.TEXT_TO_IMAGE: 2}
    assert ok != bad


def test_webhook_notification_completes_the_task(h: Harness) -> None:
    hooked = FakeProvider("local", ProviderStyle.WEBHOOK)
    h = Harness(provider=hooked, billing=h.billing)
    task_id = h.create()
    h.worker.run_once()
    job = f"job-{task_id}"
    with pytest.raises(InvalidNotification):
        h.use_cases.handle_notification(
            HandleNotificationCommand("local", {"x-fake-signature": "forged"}, job.encode())
        )
    assert h.task(task_id).status is TaskStatus.PROCESSING
    applied, found = h.use_cases.handle_notification(
        HandleNotificationCommand("local", {"x-fake-signature": "ok"}, job.encode())
    )
    assert applied and found == task_id
    assert h.task(task_id).status is TaskStatus.SUCCEEDED
    again, _ = h.use_cases.handle_notification(
        HandleNotificationCommand("local", {"x-fake-signature": "ok"}, job.encode())
    )
    assert not again
    assert h.billing.holds[task_id].status == "captured"


def test_running_result_without_job_id_is_not_lost(h: Harness) -> None:
    task_id = h.create()
    h.provider.script[task_id] = [GenerationResult(GenerationState.RUNNING, provider_job_id="j1")]
    h.worker.run_once()
    assert h.task(task_id).provider_job_id == "j1"


def test_a_direct_upload_over_the_limit_is_refused_when_used(h: Harness) -> None:
    """Browsers upload straight to storage (COS's presigned PUT cannot bound the size): the size
    is checked again when a task uses the upload."""
    limit = h.config.upload_max_bytes
    h.storage.put("u1/uploads/big.png", b"\x89PNG" + b"x" * limit, "image/png")
    with pytest.raises(InvalidParams, match="larger than the upload limit"):
        h.use_cases.create_task(
            CreateTaskCommand("u1", TaskType.BASIC_CLEAN, {}, ["u1/uploads/big.png"])
        )
    assert h.billing.calls == []


def test_inputs_must_be_images(h: Harness) -> None:
    h.storage.put("u1/uploads/doc.pdf", b"%PDF", "application/pdf")
    with pytest.raises(InvalidParams):
        h.use_cases.create_task(
            CreateTaskCommand("u1", TaskType.BASIC_CLEAN, {}, ["u1/uploads/doc.pdf"])
        )
    assert h.billing.calls == []

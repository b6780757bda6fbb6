"""Issue 9 #9 on the application with fake ports: when CreateTask answers UNAVAILABLE, the task it
created can never run, is never charged, and a retry of the same request creates exactly one task.
(The same against the real billing service, stopped and killed: test_billing_outage.py.)"""

from __future__ import annotations

from datetime import timedelta

import pytest

from atelier_tasks.application.config import TasksConfig
from atelier_tasks.application.create_task import CreateTaskCommand
from atelier_tasks.application.saga import CreateAbandoned
from atelier_tasks.domain.errors import BillingUnavailable, DailyLimitReached
from atelier_tasks.domain.model import HoldState, Task, TaskStatus, TaskType
from tests.tasks.harness import Harness

PARAMS = {"prompt": "a kite", "width": 256, "height": 256}


@pytest.fixture
def h() -> Harness:
    harness = Harness(
        config=TasksConfig(
            retry_backoff=timedelta(seconds=2), daily_limit=3, hold_grace=timedelta(seconds=30)
        )
    )
    harness.billing.fund("u1", 10)
    return harness


def create(h: Harness, request_id: str | None = "req-1", **kw: object) -> str:
    view = h.use_cases.create_task(
        CreateTaskCommand("u1", TaskType.TEXT_TO_IMAGE, PARAMS, request_id=request_id, **kw)  # type: ignore[arg-type]
    )
    return view.task.id


def only_task(h: Harness) -> Task:
    (task,) = h.repository.tasks.values()
    return h.task(task.id)


def settle_everything(h: Harness) -> None:
    h.clock.advance(seconds=31)  # past the window in which a hold in flight could still land
    for _ in range(3):
        h.worker.run_once()


def test_billing_down_answers_unavailable_and_the_task_can_never_run(h: Harness) -> None:
    h.billing.down = True
    with pytest.raises(CreateAbandoned) as err:
        create(h)
    assert isinstance(err.value, BillingUnavailable)  # UNAVAILABLE over gRPC, 503 over HTTP
    task = only_task(h)
    assert task.status is TaskStatus.FAILED and task.error_reason == "BILLING_UNAVAILABLE"
    assert task.request_id is None  # freed for the retry
    h.billing.down = False
    settle_everything(h)
    task = only_task(h)
    assert task.hold_state is HoldState.RELEASED
    assert h.provider.submitted == [] and h.billing.balances["u1"] == 10


def test_a_hold_placed_but_not_confirmed_is_released(h: Harness) -> None:
    h.billing.lose_answers = True  # billing placed it; the answer never came
    with pytest.raises(CreateAbandoned):
        create(h)
    task = only_task(h)
    assert h.billing.holds[task.id].status == "held"
    h.billing.lose_answers = False
    h.worker.run_once()  # released at once: the hold exists
    assert h.billing.holds[task.id].status == "released"
    assert only_task(h).hold_state is HoldState.RELEASED
    assert h.provider.submitted == [] and h.billing.balances["u1"] == 10


def test_no_hold_yet_is_final_only_after_the_grace_period(h: Harness) -> None:
    h.billing.down = True
    with pytest.raises(CreateAbandoned):
        create(h)
    task_id = only_task(h).id
    h.billing.down = False
    h.worker.run_once()
    assert only_task(h).hold_state is HoldState.PLACING  # a late hold could still land
    # … and one does (billing processed the first request late): it is released, not leaked.
    h.billing.hold("u1", task_id, 1, "late")
    h.clock.advance(seconds=31)
    h.worker.run_once()
    assert h.billing.holds[task_id].status == "released"
    assert only_task(h).hold_state is HoldState.RELEASED
    assert h.billing.balances["u1"] == 10


def test_release_is_retried_until_billing_answers(h: Harness) -> None:
    h.billing.lose_answers = True
    with pytest.raises(CreateAbandoned):
        create(h)
    h.billing.lose_answers = False
    h.billing.down = True
    for _ in range(3):
        h.worker.run_once()
    assert only_task(h).hold_state is HoldState.PLACING
    h.billing.down = False
    h.worker.run_once()
    assert only_task(h).hold_state is HoldState.RELEASED and h.billing.balances["u1"] == 10


def test_the_retry_of_an_abandoned_request_creates_exactly_one_task_charged_once(
    h: Harness,
) -> None:
    h.billing.down = True
    for _ in range(3):  # a client retrying its 503s while billing is down
        with pytest.raises(CreateAbandoned):
            create(h)
    h.billing.down = False
    retried = create(h)
    assert create(h) == retried  # and from now on the same request id is this task
    settle_everything(h)
    done = [t for t in h.repository.tasks.values() if t.status is TaskStatus.SUCCEEDED]
    assert [t.id for t in done] == [retried]
    assert h.provider.submitted == [retried]
    assert h.billing.balances["u1"] == 9
    assert all(
        t.hold_state is HoldState.RELEASED for t in h.repository.tasks.values() if t.id != retried
    )


def test_no_time_left_before_the_hold_gives_up_without_calling_billing(h: Harness) -> None:
    with pytest.raises(CreateAbandoned):
        create(h, respond_by=h.clock.now() + timedelta(milliseconds=500))
    assert h.billing.calls == []
    assert only_task(h).error_reason == "BILLING_UNAVAILABLE"


def test_the_hold_gets_the_callers_remaining_time(h: Harness) -> None:
    create(h, respond_by=h.clock.now() + timedelta(seconds=4))
    create(h, request_id="req-2")  # no deadline: the configured budget (10 s)
    assert h.billing.budgets == [3.0, 9.0]  # less the margin kept for the commit and answer


def test_a_hold_that_comes_back_too_late_is_abandoned_and_released(h: Harness) -> None:
    h.billing.on_hold = lambda: h.clock.advance(seconds=3.5)  # billing was slow
    with pytest.raises(CreateAbandoned):
        create(h, respond_by=h.clock.now() + timedelta(seconds=4))
    h.billing.on_hold = None
    task = only_task(h)
    assert task.status is TaskStatus.FAILED and task.hold_state is HoldState.PLACING
    h.worker.run_once()
    assert only_task(h).hold_state is HoldState.RELEASED
    assert h.provider.submitted == [] and h.billing.balances["u1"] == 10


def test_a_retry_finding_the_first_call_still_placing_finishes_it(h: Harness) -> None:
    original = h.repository.save
    h.repository.save = lambda *a, **k: (_ for _ in ()).throw(SystemExit("killed"))  # type: ignore[method-assign]
    with pytest.raises(SystemExit):
        create(h)  # died after the hold, before confirming it
    h.repository.save = original  # type: ignore[method-assign]
    task_id = create(h)  # the client's retry with the same request id
    assert only_task(h).id == task_id and only_task(h).hold_state is HoldState.HELD
    settle_everything(h)
    assert h.provider.submitted == [task_id] and h.billing.balances["u1"] == 9


def test_the_sweep_and_the_create_cannot_both_win(h: Harness) -> None:
    """The sweep abandons a task while its CreateTask is between the hold and the commit: the
    create's commit loses (version check) and it answers UNAVAILABLE."""

    def sweep_meanwhile() -> None:
        h.billing.on_hold = None
        h.clock.advance(seconds=31)
        assert h.worker.recover_holds() == 1

    h.billing.on_hold = sweep_meanwhile
    with pytest.raises(CreateAbandoned):
        create(h, respond_by=h.clock.now() + timedelta(seconds=60))
    task = only_task(h)
    assert task.status is TaskStatus.FAILED and task.error_reason == "CREATE_INTERRUPTED"
    settle_everything(h)
    assert h.provider.submitted == [] and h.billing.balances["u1"] == 10


def test_abandoned_requests_do_not_count_against_the_daily_limit(h: Harness) -> None:
    h.billing.down = True
    for n in range(5):
        with pytest.raises(CreateAbandoned):
            create(h, request_id=f"r{n}")
    h.billing.down = False
    for n in range(3):
        create(h, request_id=f"ok{n}")
    with pytest.raises(DailyLimitReached):
        create(h, request_id="one-too-many")

"""The task state machine and parameter validation (pure domain)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from atelier_tasks.domain.errors import InvalidParams, InvalidTransition, TaskNotCancellable
from atelier_tasks.domain.model import HoldState, Task, TaskStatus, TaskType
from atelier_tasks.domain.pose12 import pose12_prompts
from atelier_tasks.domain.task_types import validate_params
from tests.tasks.fakes import START


def new_task(**kw: object) -> Task:
    return Task.create(
        task_id="task_1",
        user_id="u1",
        task_type=TaskType.TEXT_TO_IMAGE,
        params={"prompt": "a cat"},
        input_keys=(),
        cost=1,
        provider="local",
        now=START,
        timeout=timedelta(minutes=10),
        request_id=None,
    )


def test_new_task_is_pending_with_first_event() -> None:
    task = new_task()
    assert task.status is TaskStatus.PENDING
    assert task.hold_state is HoldState.PLACING
    assert [(e.sequence, e.status) for e in task.new_events] == [(1, TaskStatus.PENDING)]
    assert task.deadline_at == START + timedelta(minutes=10)


def test_happy_path_records_gapless_sequence() -> None:
    task = new_task()
    task.hold_placed(START)
    task.start_attempt(START)
    task.succeed(START)
    assert [e.sequence for e in task.new_events] == [1, 2, 3]
    assert [e.status for e in task.new_events][-1] is TaskStatus.SUCCEEDED
    assert task.new_events[-1].terminal
    assert task.attempts == 1
    assert task.needs_settlement and task.settlement_is_capture
    task.settled(START)
    assert task.hold_state is HoldState.CAPTURED
    assert not task.needs_settlement


def test_unpaid_task_cannot_start() -> None:
    with pytest.raises(InvalidTransition):
        new_task().start_attempt(START)


def test_terminal_states_are_final() -> None:
    task = new_task()
    task.hold_placed(START)
    task.fail(START, "PROVIDER_FAILED", "x")
    assert task.needs_settlement and not task.settlement_is_capture
    with pytest.raises(InvalidTransition):
        task.succeed(START)
    with pytest.raises(TaskNotCancellable):
        task.cancel(START)
    with pytest.raises(InvalidTransition):
        task.start_attempt(START)


def test_retry_keeps_processing_and_counts_attempts() -> None:
    task = new_task()
    task.hold_placed(START)
    task.start_attempt(START)
    task.retry_later(START, START + timedelta(seconds=2), "flaky")
    task.start_attempt(START + timedelta(seconds=2))
    assert task.status is TaskStatus.PROCESSING
    assert task.attempts == 2
    assert task.new_events[-1].attempts == 2


def test_cancel_pending_and_processing() -> None:
    a = new_task()
    a.cancel(START)
    assert a.status is TaskStatus.CANCELLED and a.error_reason == "CANCELLED_BY_USER"
    b = new_task()
    b.hold_placed(START)
    b.start_attempt(START)
    b.cancel(START)
    assert b.status is TaskStatus.CANCELLED and b.needs_settlement


def test_text_to_image_params_are_normalised() -> None:
    out = validate_params(TaskType.TEXT_TO_IMAGE, {"prompt": "  a cat ", "width": 256.0}, [], "u1")
    assert out.params == {
        "prompt": "a cat",
        "negative_prompt": "",
        "width": 256,
        "height": 1024,
        "seed": 0,
    }


@pytest.mark.parametrize(
    ("task_type", "params", "keys", "field"),
    [
        (TaskType.TEXT_TO_IMAGE, {}, [], "prompt"),
        (TaskType.TEXT_TO_IMAGE, {"prompt": "x" * 2001}, [], "prompt"),
        (TaskType.TEXT_TO_IMAGE, {"prompt": "x", "width": 4096}, [], "width"),
        (TaskType.TEXT_TO_IMAGE, {"prompt": "x", "width": 100.5}, [], "width"),
        (TaskType.TEXT_TO_IMAGE, {"prompt": "x", "bogus": 1}, [], "bogus"),
        (
            TaskType.TEXT_TO_IMAGE,
            {"prompt": "x", "sandbox_outcome": "explode"},
            [],
            "sandbox_outcome",
        ),
        (TaskType.BASIC_CLEAN, {}, [], "input_keys"),
        (TaskType.BASIC_CLEAN, {}, ["u2/uploads/x.png"], "input_keys"),
        (TaskType.BASIC_CLEAN, {}, ["u1/../u2/x.png"], "input_keys"),
        (TaskType.MODEL_POSE12, {"scene": "moon", "category": "coat"}, ["u1/a.png"], "scene"),
        (TaskType.MODEL_POSE12, {"scene": "studio", "category": "tops"}, ["u1/a.png"], "category"),
    ],
)
def test_bad_params_name_the_field(
    task_type: TaskType, params: dict[str, object], keys: list[str], field: str
) -> None:
    with pytest.raises(InvalidParams) as err:
        validate_params(task_type, params, keys, "u1")
    assert err.value.field == field


def test_pose12_has_twelve_server_side_prompts() -> None:
    out = validate_params(
        TaskType.MODEL_POSE12, {"scene": "street", "category": "dress"}, ["u1/a.png"], "u1"
    )
    prompts = pose12_prompts(out.params)
    assert len(set(prompts)) == 12
    assert all("dress" in p and "city street" in p for p in prompts)
    assert "prompt" not in out.params  # the template is never part of the task's params

"""Issue 10: the tasks unit of work on SQLite and PostgreSQL — one transaction per `with`,
rolled back unless committed; a duplicate request id leaves the transaction usable."""

from __future__ import annotations

from datetime import timedelta

from atelier_tasks.domain.model import Task, TaskType
from tests.tasks.fakes import START
from tests.tasks.harness import MakeTasks


def new_task(task_id: str, request_id: str | None = None) -> Task:
    return Task.create(
        task_id=task_id,
        user_id="u1",
        task_type=TaskType.TEXT_TO_IMAGE,
        params={"prompt": "x"},
        input_keys=(),
        cost=1,
        provider="local",
        now=START,
        timeout=timedelta(minutes=10),
        request_id=request_id,
    )


def test_nothing_is_written_unless_committed(make_tasks: MakeTasks) -> None:
    tasks = make_tasks()
    with tasks.uow() as uow:
        uow.tasks.add(new_task("task_a"))
        assert uow.tasks.get("task_a") is not None  # visible inside its own transaction
    with tasks.uow() as uow:
        assert uow.tasks.get("task_a") is None
        uow.tasks.add(new_task("task_b"))
        uow.commit()
    with tasks.uow() as uow:
        assert uow.tasks.get("task_b") is not None
        assert [e.sequence for e in uow.tasks.events_after("task_b", 0)] == [1]


def test_an_error_inside_rolls_back(make_tasks: MakeTasks) -> None:
    tasks = make_tasks()
    try:
        with tasks.uow() as uow:
            uow.tasks.add(new_task("task_c"))
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    with tasks.uow() as uow:
        assert uow.tasks.get("task_c") is None


def test_a_duplicate_request_id_answers_the_stored_task_in_the_same_transaction(
    make_tasks: MakeTasks,
) -> None:
    tasks = make_tasks()
    with tasks.uow() as uow:
        uow.tasks.add(new_task("task_1", request_id="r1"))
        uow.commit()
    with tasks.uow() as uow:
        stored = uow.tasks.add(new_task("task_2", request_id="r1"))
        assert stored.id == "task_1"
        uow.tasks.add(new_task("task_3"))  # the transaction is still usable
        uow.commit()
    with tasks.uow() as uow:
        assert uow.tasks.get("task_2") is None
        assert uow.tasks.get("task_3") is not None

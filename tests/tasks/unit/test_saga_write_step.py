"""Issue 10: the saga's one write step (commit / update), which every change to a task takes."""

from __future__ import annotations

from atelier_tasks.domain.model import Task
from tests.tasks.harness import Harness


def _created(h: Harness) -> Task:
    h.billing.fund("u1", 10)
    return h.task(h.create())


def test_commit_saves_and_wakes_watchers_once() -> None:
    h = Harness()
    task = _created(h)
    subscription = h.hub.subscribe(task.id)
    task.release_lease()
    assert h.saga.commit(task)
    assert subscription.wait(0)
    assert h.task(task.id).version == task.version


def test_commit_of_a_stale_copy_writes_nothing_and_wakes_nobody() -> None:
    h = Harness()
    task = _created(h)
    stale = h.task(task.id)
    assert h.saga.commit(task)  # someone else wrote first
    subscription = h.hub.subscribe(task.id)
    stale.error_message = "mine"
    assert not h.saga.commit(stale)
    assert not subscription.wait(0)
    assert h.task(task.id).error_message is None


def test_update_rereads_and_applies_the_change_again_after_a_concurrent_write() -> None:
    h = Harness()
    task = _created(h)
    stale = h.task(task.id)
    task.error_message = "theirs"
    assert h.saga.commit(task)
    seen: list[str | None] = []

    def change(t: Task) -> bool:
        seen.append(t.error_message)
        t.error_message = f"{t.error_message} + mine"
        return True

    updated = h.saga.update(stale, change)
    assert seen == [None, "theirs"]  # the stale copy lost; the fresh one won
    assert updated is not None and h.task(task.id).error_message == "theirs + mine"


def test_update_writes_nothing_when_the_change_declines() -> None:
    h = Harness()
    task = _created(h)
    before = h.task(task.id).version
    assert h.saga.update(task, lambda t: False) is task
    assert h.task(task.id).version == before


def test_update_of_a_vanished_task_answers_none() -> None:
    h = Harness()
    task = _created(h)
    h.repository.delete(task.id)
    assert h.saga.update(task, lambda t: True) is None

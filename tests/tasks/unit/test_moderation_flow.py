"""Content moderation in the saga, on Fake* ports: the prompt at creation, the input photo before
dispatch, every result before it is stored; the provider down; the record; the overturn."""

from __future__ import annotations

from datetime import timedelta

import pytest

from atelier_tasks.application.create_task import CreateTaskCommand
from atelier_tasks.application.moderation_review import ListDecisionsQuery, OverturnCommand
from atelier_tasks.application.ports.generation import ProviderStyle
from atelier_tasks.application.ports.moderation import ModerationSubject, Verdict
from atelier_tasks.application.queries import GetTaskQuery, ListImagesQuery
from atelier_tasks.domain.errors import (
    AdminOnly,
    ContentRejected,
    DecisionNotOverturnable,
    ModerationUnavailable,
)
from atelier_tasks.domain.model import HoldState, TaskStatus, TaskType
from tests.tasks.fakes import FakeModeration, FakeProvider, png_bytes, succeeded
from tests.tasks.harness import Harness

PHOTO_KEY = "u1/uploads/photo.png"


@pytest.fixture
def h() -> Harness:
    harness = Harness(moderation=FakeModeration())
    harness.billing.fund("u1", 10)
    harness.storage.put(PHOTO_KEY, png_bytes("photo"), "image/png")
    return harness


def moderation(h: Harness) -> FakeModeration:
    assert h.moderation is not None
    return h.moderation


def clean(h: Harness) -> str:
    view = h.use_cases.create_task(
        CreateTaskCommand(
            user_id="u1", type=TaskType.BASIC_CLEAN, params={}, input_keys=[PHOTO_KEY]
        )
    )
    return view.task.id


def decisions(h: Harness) -> list[tuple[str | None, ModerationSubject, Verdict]]:
    records = sorted(h.repository.decisions.records.values(), key=lambda r: (r.created_at, r.id))
    return [(r.task_id, r.subject, r.verdict) for r in records]


def test_a_refused_prompt_creates_nothing_charges_nothing_and_is_recorded(h: Harness) -> None:
    with pytest.raises(ContentRejected):
        h.create(prompt="a forbidden thing", negative_prompt="blurry")
    assert h.repository.tasks == {}
    assert h.billing.balances["u1"] == 10 and h.billing.calls == []
    assert moderation(h).texts == ["a forbidden thing\nblurry"]
    (record,) = h.repository.decisions.records.values()
    assert record.task_id is None and record.user_id == "u1"
    assert record.subject is ModerationSubject.PROMPT and record.verdict is Verdict.REJECTED
    assert [label.name for label in record.labels] == ["Blocked:forbidden"]
    assert record.request_id == "req-1"
    h.worker.run_once()
    assert h.provider.submitted == []


def test_the_negative_prompt_is_checked_too(h: Harness) -> None:
    with pytest.raises(ContentRejected):
        h.create(prompt="a cat", negative_prompt="nothing FORBIDDEN")
    assert h.repository.tasks == {}


def test_an_allowed_prompt_is_recorded_with_its_task(h: Harness) -> None:
    task_id = h.create(prompt="a cat")
    assert decisions(h) == [(task_id, ModerationSubject.PROMPT, Verdict.ALLOWED)]
    h.worker.run_once()
    assert h.task(task_id).status is TaskStatus.SUCCEEDED
    # the result was checked before it was stored
    assert decisions(h)[-1] == (task_id, ModerationSubject.RESULT_IMAGE, Verdict.ALLOWED)


def test_moderation_down_at_create_does_nothing_and_never_fails_open(h: Harness) -> None:
    moderation(h).down = True
    with pytest.raises(ModerationUnavailable):
        h.create(prompt="a cat")
    moderation(h).down = False
    moderation(h).refusing = True  # bad credentials: still nothing done, never allowed
    with pytest.raises(ModerationUnavailable):
        h.create(prompt="a cat")
    assert h.repository.tasks == {} and h.billing.calls == []
    assert h.repository.decisions.records == {}


def test_a_retry_of_a_created_request_is_answered_even_if_moderation_is_down(h: Harness) -> None:
    command = CreateTaskCommand(
        user_id="u1", type=TaskType.TEXT_TO_IMAGE, params={"prompt": "a cat"}, request_id="r1"
    )
    first = h.use_cases.create_task(command)
    moderation(h).down = True
    again = h.use_cases.create_task(command)
    assert again.task.id == first.task.id
    assert h.billing.balances["u1"] == 9


def test_types_without_a_user_prompt_skip_the_text_check(h: Harness) -> None:
    clean(h)
    view = h.use_cases.create_task(
        CreateTaskCommand(
            user_id="u1",
            type=TaskType.MODEL_POSE12,
            params={"scene": "studio", "category": "dress"},
            input_keys=[PHOTO_KEY],
        )
    )
    assert view.task.status is TaskStatus.PENDING
    assert moderation(h).texts == []


def test_a_refused_input_photo_fails_the_task_and_releases_the_hold(h: Harness) -> None:
    moderation(h).blocked_bytes.add(png_bytes("photo")[4:12])
    task_id = clean(h)
    assert h.billing.balances["u1"] == 9
    h.worker.run_once()
    task = h.task(task_id)
    assert task.status is TaskStatus.FAILED and task.error_reason == "CONTENT_REJECTED"
    assert task.hold_state is HoldState.RELEASED and h.billing.balances["u1"] == 10
    assert h.provider.submitted == []  # it never reached the provider
    assert decisions(h) == [(task_id, ModerationSubject.INPUT_IMAGE, Verdict.REJECTED)]
    (record,) = h.repository.decisions.records.values()
    assert record.content_key == PHOTO_KEY
    checked = moderation(h).images[0]
    assert checked.key == PHOTO_KEY and checked.url and checked.content_type == "image/png"


def test_a_refused_result_is_never_stored_and_the_hold_is_released(h: Harness) -> None:
    task_id = h.create(prompt="a cat")
    moderation(h).blocked_bytes.add(succeeded(task_id, 1).outputs[0].data[4:12])
    before = set(h.storage.objects)
    h.worker.run_once()
    view = h.use_cases.get_task(GetTaskQuery("u1", task_id))
    assert view.task.status is TaskStatus.FAILED
    assert view.task.error_reason == "CONTENT_REJECTED" and view.images == []
    assert h.billing.balances["u1"] == 10
    assert set(h.storage.objects) == before  # nothing stored under any key
    images, _ = h.use_cases.list_images(ListImagesQuery("u1", 20, ""))
    assert images == []
    assert decisions(h)[-1] == (task_id, ModerationSubject.RESULT_IMAGE, Verdict.REJECTED)


def test_every_result_is_checked_and_one_refusal_fails_them_all(h: Harness) -> None:
    h.provider.outputs = 12
    view = h.use_cases.create_task(
        CreateTaskCommand(
            user_id="u1",
            type=TaskType.MODEL_POSE12,
            params={"scene": "studio", "category": "dress"},
            input_keys=[PHOTO_KEY],
        )
    )
    moderation(h).blocked_bytes.add(succeeded(view.task.id, 12).outputs[11].data[4:12])
    h.worker.run_once()
    task = h.task(view.task.id)
    assert task.status is TaskStatus.FAILED and task.error_reason == "CONTENT_REJECTED"
    results = [d for d in decisions(h) if d[1] is ModerationSubject.RESULT_IMAGE]
    assert len(results) == 12 and results[-1][2] is Verdict.REJECTED


def test_moderation_down_in_the_worker_waits_and_finishes_once_it_is_back(h: Harness) -> None:
    task_id = clean(h)
    moderation(h).down = True
    for _ in range(5):  # far more rounds than TASKS_MAX_ATTEMPTS: waiting uses no attempt
        h.worker.run_once()
        task = h.task(task_id)
        assert task.status is TaskStatus.PROCESSING and task.attempts == 0
        assert task.next_attempt_at is not None and task.lease_owner is None
        h.clock.advance(seconds=61)  # the longest wait is poll_max (60 s)
    assert h.provider.submitted == [] and h.repository.decisions.records == {}
    moderation(h).down = False
    h.worker.run_once()
    task = h.task(task_id)
    assert task.status is TaskStatus.SUCCEEDED and task.attempts == 1
    assert h.billing.holds[task_id].status == "captured"


def test_the_wait_backs_off(h: Harness) -> None:
    task_id = clean(h)
    moderation(h).down = True
    waits = []
    for _ in range(4):
        h.worker.run_once()
        task = h.task(task_id)
        assert task.next_attempt_at is not None
        waits.append(task.next_attempt_at - h.clock.now())
        h.clock.set(h.clock.now() + waits[-1])
    assert waits == sorted(waits) and waits[-1] > waits[0]
    assert max(waits) <= h.config.poll_max


def test_moderation_down_until_the_deadline_times_out_and_releases(h: Harness) -> None:
    task_id = clean(h)
    moderation(h).down = True
    h.worker.run_once()
    h.clock.set(h.clock.now() + h.config.timeout + timedelta(seconds=1))
    h.worker.run_once()
    task = h.task(task_id)
    assert task.status is TaskStatus.FAILED and task.error_reason == "TIMEOUT"
    assert h.billing.balances["u1"] == 10 and h.provider.submitted == []


def test_results_of_a_polling_provider_are_asked_for_again_while_moderation_is_down() -> None:
    provider = FakeProvider(style=ProviderStyle.POLLING)
    h = Harness(moderation=FakeModeration(), provider=provider)
    h.billing.fund("u1", 10)
    task_id = h.create(prompt="a cat")
    h.worker.run_once()  # submitted: running at the provider
    job = h.task(task_id).provider_job_id
    assert job is not None
    moderation(h).down = True
    provider.poll_script[job] = [succeeded(task_id, 1), succeeded(task_id, 1)]
    h.clock.advance(seconds=60)
    h.worker.run_once()
    task = h.task(task_id)
    assert task.status is TaskStatus.PROCESSING and task.next_poll_at is not None
    assert h.storage.objects == {} or all("/tasks/" not in k for k in h.storage.objects)
    moderation(h).down = False
    h.clock.advance(seconds=120)
    h.worker.run_once()
    assert h.task(task_id).status is TaskStatus.SUCCEEDED
    assert provider.submitted == [task_id]  # the result was asked for again, not regenerated


def test_a_provider_that_refuses_the_request_fails_closed(h: Harness) -> None:
    task_id = clean(h)
    moderation(h).refusing = True
    h.worker.run_once()
    task = h.task(task_id)
    assert task.status is TaskStatus.FAILED and task.error_reason == "MODERATION_FAILED"
    assert h.billing.balances["u1"] == 10 and h.provider.submitted == []


def test_content_allowed_in_an_earlier_attempt_is_not_asked_again(h: Harness) -> None:
    task_id = clean(h)
    h.provider.script[task_id] = [ConnectionError("boom")]  # not caught: the worker pass fails
    with pytest.raises(ConnectionError):
        h.worker.run_once()
    assert len(moderation(h).images) == 1
    h.clock.set(
        h.clock.now() + h.config.lease + timedelta(seconds=1)
    )  # the lease runs out: dispatched again
    h.worker.run_once()
    assert h.task(task_id).status is TaskStatus.SUCCEEDED
    inputs = [i for i in moderation(h).images if i.key == PHOTO_KEY]
    assert len(inputs) == 1


def test_moderation_off_checks_nothing() -> None:
    h = Harness()  # moderation None: MODERATION_ENABLED=false
    h.billing.fund("u1", 10)
    task_id = h.create(prompt="a forbidden thing")
    h.worker.run_once()
    assert h.task(task_id).status is TaskStatus.SUCCEEDED
    assert h.repository.decisions.records == {}


# --- the admin's review and overturn ----------------------------------------------------------


def review(h: Harness, verdict: Verdict | None = Verdict.REJECTED) -> list[str]:
    page = h.use_cases.list_decisions(ListDecisionsQuery(True, 20, "", verdict=verdict))
    return [r.id for r in page.decisions]


def overturn(h: Harness, decision_id: str) -> str | None:
    record = h.use_cases.overturn_decision(OverturnCommand(True, "admin-1", decision_id))
    assert record.overturned_by == "admin-1" and record.overturned_at is not None
    return record.rerun_task_id


def test_overturning_a_refused_input_reruns_the_task_at_no_charge(h: Harness) -> None:
    moderation(h).blocked_bytes.add(png_bytes("photo")[4:12])
    task_id = clean(h)
    h.worker.run_once()
    assert h.billing.balances["u1"] == 10
    (decision_id,) = review(h)
    rerun_id = overturn(h, decision_id)
    assert rerun_id is not None and rerun_id != task_id
    rerun = h.task(rerun_id)
    assert rerun.cost == 0 and rerun.type is TaskType.BASIC_CLEAN
    assert rerun.input_keys == (PHOTO_KEY,) and rerun.request_id == f"rerun:{task_id}"
    checked = len(moderation(h).images)
    h.worker.run_once()
    rerun = h.task(rerun_id)
    assert rerun.status is TaskStatus.SUCCEEDED, rerun.error_message
    assert h.billing.balances["u1"] == 10 and rerun_id not in h.billing.holds  # no hold at all
    # the vouched photo was not asked again; the new result was
    asked = moderation(h).images[checked:]
    assert [i.key for i in asked] == [None]
    assert (rerun_id, ModerationSubject.INPUT_IMAGE, Verdict.ALLOWED) in decisions(h)
    # a repeat changes nothing
    assert overturn(h, decision_id) == rerun_id
    assert len([t for t in h.repository.tasks.values() if t.cost == 0]) == 1


def test_overturning_a_refused_result_vouches_for_that_image_only(h: Harness) -> None:
    task_id = h.create(prompt="a cat")
    bad = succeeded(task_id, 1).outputs[0].data
    moderation(h).blocked_bytes.add(bad[4:12])
    h.worker.run_once()
    (decision_id,) = review(h)
    rerun_id = overturn(h, decision_id)
    assert rerun_id is not None
    # the re-run's provider answers with the very image the admin vouched for: not asked again
    h.provider.script[rerun_id] = [succeeded(task_id, 1)]
    checked = len(moderation(h).images)
    h.worker.run_once()
    assert h.task(rerun_id).status is TaskStatus.SUCCEEDED
    assert moderation(h).images[checked:] == []
    assert h.billing.balances["u1"] == 10


def test_a_rerun_with_other_refused_results_fails_again(h: Harness) -> None:
    task_id = h.create(prompt="a cat")
    moderation(h).blocked_bytes.add(succeeded(task_id, 1).outputs[0].data[4:12])
    h.worker.run_once()
    (decision_id,) = review(h)
    rerun_id = overturn(h, decision_id)
    assert rerun_id is not None
    moderation(h).blocked_bytes.add(succeeded(rerun_id, 1).outputs[0].data[4:12])
    h.worker.run_once()
    rerun = h.task(rerun_id)
    assert rerun.status is TaskStatus.FAILED and rerun.error_reason == "CONTENT_REJECTED"
    assert h.billing.balances["u1"] == 10


def test_overturning_a_refused_prompt_only_records_it(h: Harness) -> None:
    with pytest.raises(ContentRejected):
        h.create(prompt="forbidden")
    (decision_id,) = review(h)
    assert overturn(h, decision_id) is None
    assert h.repository.tasks == {}
    assert review(h, None) == [decision_id]


def test_only_rejections_can_be_overturned_and_only_by_admins(h: Harness) -> None:
    h.create(prompt="a cat")
    (allowed,) = review(h, Verdict.ALLOWED)
    with pytest.raises(DecisionNotOverturnable):
        overturn(h, allowed)
    with pytest.raises(AdminOnly):
        h.use_cases.overturn_decision(OverturnCommand(False, "u1", allowed))
    with pytest.raises(AdminOnly):
        h.use_cases.list_decisions(ListDecisionsQuery(False, 20, ""))


def test_the_review_list_pages_newest_first(h: Harness) -> None:
    for n in range(5):
        with pytest.raises(ContentRejected):
            h.create(prompt=f"forbidden {n}")
        h.clock.advance(seconds=1)
    seen: list[str] = []
    token = ""
    while True:
        page = h.use_cases.list_decisions(ListDecisionsQuery(True, 2, token, Verdict.REJECTED))
        seen += [r.id for r in page.decisions]
        assert len(page.item_tokens) == len(page.decisions)
        token = page.next_page_token
        if not token:
            break
    records = h.repository.decisions.records
    assert seen == sorted(records, key=lambda i: records[i].created_at, reverse=True)

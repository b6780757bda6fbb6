"""From the wire to the API's JSON without a server: the gRPC adapters' mapping (protobuf →
DTO) and the presenters (DTO → response model), which used to be one step inside the routes."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from google.protobuf import timestamp_pb2
from google.protobuf.timestamp_pb2 import Timestamp

from atelier.billing.v1 import billing_pb2
from atelier.tasks.v1 import tasks_pb2
from atelier_gateway.adapters.grpc_billing import balance_of, order_of
from atelier_gateway.adapters.grpc_tasks import (
    decision_of,
    event_of,
    params_json_of,
    task_of,
    upload_of,
)
from atelier_gateway.application import billing_views, task_views
from atelier_gateway.application.admin_timeline import TimelineItem
from atelier_gateway.application.calls import Page
from atelier_gateway.application.task_views import is_simple_json
from atelier_gateway.entrypoints.http.presenters import admin
from atelier_gateway.entrypoints.http.presenters import billing as billing_json
from atelier_gateway.entrypoints.http.presenters import tasks as tasks_json
from atelier_ports.problems import InvalidArgument

WHEN = datetime(2030, 1, 2, 3, 4, 5, 600_000, tzinfo=UTC)


def _ts(when: datetime = WHEN) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(when)
    return stamp


def test_an_order_reads_as_the_api_names_it() -> None:
    wire = billing_pb2.Order(
        id="ord_1",
        number="00000001",
        status=billing_pb2.ORDER_STATUS_PAID,
        item_id="pack_100",
        item_kind=billing_pb2.CATALOG_ITEM_KIND_PACK,
        credits=100,
        amount=500,
        currency="USD",
        channel="local",
        checkout=billing_pb2.Checkout(url="https://pay.example/x", expire_time=_ts()),
        create_time=_ts(),
    )
    body = billing_json.order(order_of(wire)).model_dump(mode="json")
    assert body["status"] == "paid" and body["item_kind"] == "pack"
    assert body["checkout"] == {
        "url": "https://pay.example/x",
        "code_url": None,
        "expires_at": "2030-01-02T03:04:05.600000Z",
    }
    assert body["created_at"] == "2030-01-02T03:04:05.600000Z"
    assert body["paid_at"] is None and body["provider_transaction_id"] is None


def test_a_balance_keeps_grant_sources_and_the_membership() -> None:
    wire = billing_pb2.Balance(
        available=7,
        held=3,
        grants=[billing_pb2.Grant(id="g1", source=billing_pb2.GRANT_SOURCE_SIGNUP_BONUS)],
        membership=billing_pb2.Membership(
            active=True, plan_id="pro", status=billing_pb2.MEMBERSHIP_STATUS_ACTIVE
        ),
    )
    body = billing_json.balance(balance_of(wire)).model_dump(mode="json")
    assert body["grants"][0]["source"] == "signup_bonus"
    assert body["membership"]["status"] == "active"
    assert body["membership"]["period_end"] is None
    empty = billing_json.balance(balance_of(billing_pb2.Balance())).model_dump(mode="json")
    assert empty["membership"] is None and empty["grants"] == []


def test_a_task_gives_integral_parameters_back_as_integers() -> None:
    wire = tasks_pb2.Task(
        id="tsk_1",
        type=tasks_pb2.TASK_TYPE_MODEL_POSE12,
        status=tasks_pb2.TASK_STATUS_SUCCEEDED,
        params_json=params_json_of({"n": 2, "scale": 1.5, "tags": [1, "a"], "deep": {"k": 3}}),
        input_keys=["up_1"],
        images=[tasks_pb2.Image(id="img_1", task_type=tasks_pb2.TASK_TYPE_MODEL_POSE12)],
        finish_time=_ts(),
    )
    body = tasks_json.task(task_of(wire))
    assert tasks_json.Task.model_validate(body, strict=True).model_dump(mode="json") == body
    assert body["params"] == {"n": 2, "scale": 1.5, "tags": [1, "a"], "deep": {"k": 3}}
    assert isinstance(body["params"]["n"], int)
    assert (body["type"], body["status"]) == ("model_pose12", "succeeded")
    assert body["images"][0]["task_type"] == "model_pose12"
    assert body["input_upload_ids"] == ["up_1"] and body["error"] is None
    assert body["finished_at"] == "2030-01-02T03:04:05.600000Z"


def _task(**changes: Any) -> task_views.Task:
    image = task_views.Image(
        id="img_1",
        task_id="tsk_1",
        index=0,
        url="https://s/x.png",
        thumbnail_url="https://s/x_t.png",
        width=256,
        height=512,
        content_type="image/png",
        size=1234,
        sha256="ab" * 32,
        task_type="text_to_image",
        created_at=WHEN,
    )
    task = task_views.Task(
        id="tsk_1",
        type="text_to_image",
        status="failed",
        params={"prompt": "caf\u00e9", "width": 256, "seed": 0, "ratio": 1.5, "tags": ["a"]},
        input_upload_ids=("u/up_1",),
        cost=3,
        attempts=2,
        error="PROVIDER_FAILED",
        error_message="the provider said no",
        images=(image, image),
        created_at=WHEN,
        updated_at=WHEN.astimezone(timezone(timedelta(hours=8))),
        started_at=WHEN,
        finished_at=WHEN,
        deadline_at=None,
    )
    return replace(task, **changes)


@pytest.mark.parametrize(
    "task",
    [
        _task(),
        _task(status="pending", error=None, error_message=None, images=(), params={}),
        _task(created_at=None, updated_at=None, started_at=None, finished_at=None),
    ],
)
def test_task_json_built_directly_is_exactly_its_model(task: task_views.Task) -> None:
    """The presenters build task and image JSON without pydantic: each object is held to the
    model the OpenAPI document shows (strictly: no field missing, extra, or of another type) and
    is what the model itself would have made."""
    body = tasks_json.task(task)
    model = tasks_json.Task.model_validate(body, strict=True)
    assert model.model_dump(mode="json") == body
    assert json.loads(json.dumps(body)) == body
    if task.updated_at is not None:
        assert body["updated_at"] == "2030-01-02T03:04:05.600000Z"  # UTC, whatever the zone
    page = tasks_json.task_page(Page(items=(task, task), next_page_token="t2"))
    assert tasks_json.TaskPage.model_validate(page, strict=True).model_dump(mode="json") == page
    images = tasks_json.image_page(Page(items=tuple(task.images), next_page_token=""))
    checked = tasks_json.ImagePage.model_validate(images, strict=True)
    assert checked.model_dump(mode="json") == images


def test_an_event_and_an_unknown_wire_status() -> None:
    wire = tasks_pb2.TaskEvent(
        task_id="tsk_1", sequence=4, status=tasks_pb2.TASK_STATUS_FAILED, terminal=True
    )
    event = tasks_json.task_event(event_of(wire)).model_dump(mode="json")
    assert (event["sequence"], event["status"], event["terminal"]) == (4, "failed", True)
    # A status this gateway does not know is an internal error, never a made-up name.
    with pytest.raises(KeyError):
        event_of(tasks_pb2.TaskEvent(task_id="tsk_1"))


@pytest.mark.parametrize(
    ("method", "fields", "headers"), [("POST", {"k": "v"}, None), ("PUT", None, {"h": "v"})]
)
def test_an_upload_target_shows_form_fields_or_headers_by_method(
    method: str, fields: dict[str, str] | None, headers: dict[str, str] | None
) -> None:
    wire = tasks_pb2.Upload(
        key="up_1", method=method, url="https://s/x", fields={"k": "v"}, headers={"h": "v"}
    )
    body = tasks_json.upload_target(upload_of(wire)).model_dump(mode="json")
    assert (body["fields"], body["headers"]) == (fields, headers)
    assert body["upload_id"] == body["key"] == "up_1" and body["credentials"] is None


def test_an_upload_target_carries_sts_credentials_where_storage_issues_them() -> None:
    wire = tasks_pb2.Upload(
        key="u1/uploads/up_1/p.jpg",
        method="PUT",
        url="https://media-1250000000.cos.ap-shanghai.myqcloud.com/u1/uploads/up_1/p.jpg?q-sign",
        headers={"Content-Type": "image/jpeg"},
        credentials=tasks_pb2.UploadCredentials(
            tmp_secret_id="AKIDtmp",
            tmp_secret_key="tmpkey",
            session_token="token",
            expire_time=Timestamp(seconds=1_800_000_000),
            bucket="media-1250000000",
            region="ap-shanghai",
            prefix="u1/uploads/",
        ),
    )
    body = tasks_json.upload_target(upload_of(wire)).model_dump(mode="json")
    assert body["credentials"] == {
        "tmp_secret_id": "AKIDtmp",
        "tmp_secret_key": "tmpkey",
        "session_token": "token",
        "expires_at": "2027-01-15T08:00:00Z",
        "bucket": "media-1250000000",
        "region": "ap-shanghai",
        "prefix": "u1/uploads/",
    }
    assert tasks_json.UploadTarget.model_validate(body, strict=True).model_dump(mode="json") == body


SAMPLES: list[Any] = [
    {"prompt": "a chair", "n": 4, "x": -1.5e300, "ok": True, "none": None},
    {"big": 2**1000},
    {"too_big": 10**400},
    {"nested": [1, {"deeper": -(10**309)}]},
    {"text": "caf\u00e9 \U0001f600"},
    {"lone": "\ud800"},
    {"\udfff": 1},
]


@pytest.mark.parametrize("params", SAMPLES)
def test_the_routes_check_of_params_agrees_with_the_wire(params: dict[str, Any]) -> None:
    """``is_simple_json`` (checked before the Idempotency-Key is claimed) passes only what the
    adapter can put on the wire, and that comes back as it was sent; what is not UTF-8 (a lone
    surrogate) the adapter refuses as well."""
    utf8 = all(_utf8(text) for text in _texts(params))
    if not utf8:
        assert not is_simple_json(params)
        with pytest.raises(InvalidArgument):
            params_json_of(params)
    if is_simple_json(params):
        wire = tasks_pb2.Task(
            id="t",
            type=tasks_pb2.TASK_TYPE_TEXT_TO_IMAGE,
            status=tasks_pb2.TASK_STATUS_PENDING,
            params_json=params_json_of(params),
        )
        assert task_of(tasks_pb2.Task.FromString(wire.SerializeToString())).params == params


def _texts(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [*value, *(t for v in value.values() for t in _texts(v))]
    if isinstance(value, list):
        return [t for v in value for t in _texts(v)]
    return []


def _utf8(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def test_params_missing_on_the_wire_are_an_empty_object() -> None:
    wire = tasks_pb2.Task(
        id="t", type=tasks_pb2.TASK_TYPE_BASIC_CLEAN, status=tasks_pb2.TASK_STATUS_PENDING
    )
    assert task_of(wire).params == {}


def test_admin_json_built_directly_is_exactly_its_model() -> None:
    """Admin task items (a task with its owner) and timeline entries, held to their models."""
    task = _task(user_id="usr_1")
    page = admin.admin_task_page(Page(items=(task,), next_page_token=""))
    assert page["items"][0]["user_id"] == "usr_1"
    assert admin.AdminTaskPage.model_validate(page, strict=True).model_dump(mode="json") == page
    entry = billing_views.LedgerEntry(
        id="7",
        kind="capture",
        amount=0,
        held_change=-3,
        balance_after=7,
        reference="task:tsk_1",
        reason="",
        created_at=WHEN,
    )
    activity = billing_views.AccountActivity(
        id="ledger:7",
        kind="ledger",
        at=WHEN,
        ledger_entry=entry,
        order=None,
        cause="task",
        cause_id="tsk_1",
        page_token="p",
    )
    items = [
        TimelineItem(id="ledger:7", at=WHEN, activity=activity),
        TimelineItem(id="task:tsk_1", at=WHEN, task=task),
    ]
    timeline = admin.timeline_page(Page(items=items, next_page_token="n"))
    model = admin.TimelinePage.model_validate(timeline, strict=True)
    assert model.model_dump(mode="json") == timeline
    capture, task_entry = timeline["items"]
    assert capture["caused_by"] == {"type": "task", "id": "tsk_1"}
    assert capture["kind"] == "capture" and capture["held_change"] == -3
    assert task_entry["kind"] == "task" and task_entry["reason"] == "PROVIDER_FAILED"


def test_a_moderation_decision_from_the_wire_to_the_review_list_and_the_timeline() -> None:
    wire = tasks_pb2.ModerationDecision(
        id="mod_1",
        task_id="tsk_1",
        user_id="u1",
        subject=tasks_pb2.MODERATION_SUBJECT_RESULT_IMAGE,
        verdict=tasks_pb2.MODERATION_VERDICT_REJECTED,
        labels=[tasks_pb2.ModerationLabel(name="Explicit", confidence=0.97)],
        provider="aws",
        provider_request_id="req-9",
        create_time=Timestamp(seconds=1_700_000_000),
    )
    d = decision_of(wire)
    assert (d.subject, d.verdict, d.request_id, d.overturned_at) == (
        "result_image",
        "rejected",
        "req-9",
        None,
    )
    assert (
        decision_of(
            tasks_pb2.ModerationDecision(
                id="mod_2",
                subject=tasks_pb2.MODERATION_SUBJECT_PROMPT,
                verdict=tasks_pb2.MODERATION_VERDICT_ALLOWED,
            )
        ).task_id
        is None
    )
    page = admin.moderation_page(Page(items=[d], next_page_token=""))
    model = admin.ModerationPage.model_validate(page, strict=True)
    assert model.model_dump(mode="json") == page
    (item,) = page["items"]
    assert item["labels"] == [{"name": "Explicit", "confidence": 0.97}]
    assert item["created_at"] == "2023-11-14T22:13:20Z" and item["rerun_task_id"] is None
    entries = admin.timeline_page(
        Page(
            items=[TimelineItem(id="moderation:mod_1", at=d.created_at, decision=d)],
            next_page_token="",
        )
    )
    admin.TimelinePage.model_validate(entries, strict=True)
    (entry,) = entries["items"]
    assert entry["kind"] == "moderation" and entry["status"] == "rejected"
    assert entry["caused_by"] == {"type": "task", "id": "tsk_1"}
    assert entry["reason"] == "Explicit 0.97" and entry["moderation"] == item

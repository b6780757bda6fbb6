"""Content moderation over HTTP on the real stack (gateway, billing, tasks with its worker): a
refused prompt, a refused input photo and a refused result, the provider down for a while, the
admin's review list, the timeline, and the overturn that re-runs a task at no charge.

Most tests moderate with a test double of the port (``FakeModeration``: it refuses the word
"forbidden" and any image containing given bytes), so that what is refused — a result too — is
chosen by the test; the last ones run the real local adapter (word lists, NudeNet) end to end.
Every adapter is checked by the contract suite (tests/contracts/integration/test_moderation.py)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.gateway.conftest import Stack, User
from tests.gateway.e2e.test_admin_console import admin_of, timeline
from tests.gateway.e2e.test_tasks import jpeg, settled_balance, upload_photo, wait_for_status
from tests.support.moderation_images import flagged_image, product_photo
from tests.tasks.fakes import FakeModeration

SQLITE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def middle(data: bytes) -> bytes:
    """32 bytes from the middle of an image: found in that image and no other."""
    return data[len(data) // 2 : len(data) // 2 + 32]


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def stored_files(stack: Stack, task_id: str) -> list[Path]:
    root = Path(stack.tasks.container.settings.data_dir) / "objects"
    return [p for p in root.rglob("*") if task_id in str(p)]


def create(user: User, body: dict[str, Any]) -> httpx.Response:
    return user.post("/v1/tasks", json=body)


@SQLITE
def test_a_refused_prompt_is_422_and_changes_nothing(
    moderated_stack: tuple[Stack, FakeModeration],
) -> None:
    stack, _ = moderated_stack
    user = stack.api.user("pat@example.com")
    before = user.get("/v1/me/balance").json()
    body = {"type": "text_to_image", "params": {"prompt": "a forbidden picture"}}
    r = create(user, body)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    problem = r.json()
    assert problem["code"] == "content_rejected" and problem["status"] == 422
    assert problem["type"].endswith("/content_rejected")
    zh = user.post("/v1/tasks", json=body, headers={"Accept-Language": "zh-CN"})
    assert zh.status_code == 422 and zh.json()["detail"] == "内容未通过审核，未扣除积分。"
    assert user.get("/v1/me/balance").json() == before
    assert user.get("/v1/tasks").json()["items"] == []
    # the refusal is recorded, without a task
    admin = admin_of(stack, "boss@example.com")
    items = admin.get("/v1/admin/moderation", params={"verdict": "rejected"}).json()["items"]
    assert [(i["subject"], i["task_id"], i["user_id"]) for i in items] == [
        ("prompt", None, user.id),
        ("prompt", None, user.id),
    ]
    assert items[0]["labels"] == [{"name": "Blocked:forbidden", "confidence": 0.99}]


@SQLITE
def test_a_refused_input_photo_fails_the_task_and_gives_the_credit_back(
    moderated_stack: tuple[Stack, FakeModeration],
) -> None:
    stack, moderation = moderated_stack
    user = stack.api.user("ina@example.com")
    photo = jpeg(300, 200)
    moderation.blocked_bytes.add(middle(photo))
    upload_id = upload_photo(stack, user, photo)
    r = create(user, {"type": "basic_clean", "params": {}, "input_upload_id": upload_id})
    assert r.status_code == 201, r.text
    task = wait_for_status(user, r.json()["id"], {"succeeded", "failed"})
    assert task["status"] == "failed" and task["error"] == "content_rejected"
    assert task["images"] == []
    assert settled_balance(user)["available"] == 10
    assert user.get(f"/v1/tasks/{task['id']}/archive").status_code == 409
    assert user.get("/v1/images").json()["items"] == []


@SQLITE
def test_a_refused_result_is_never_reachable_and_the_credit_comes_back(
    moderated_stack: tuple[Stack, FakeModeration],
) -> None:
    stack, moderation = moderated_stack
    user = stack.api.user("rex@example.com")
    body = {"type": "text_to_image", "params": {"prompt": "a red chair", "width": 256}}
    first = wait_for_status(user, create(user, body).json()["id"], {"succeeded"})
    picture = httpx.get(first["images"][0]["url"]).content
    moderation.blocked_bytes.add(middle(picture))  # the same prompt makes the same picture
    r = create(user, body)
    assert r.status_code == 201, r.text
    refused = wait_for_status(user, r.json()["id"], {"succeeded", "failed"})
    assert refused["status"] == "failed" and refused["error"] == "content_rejected"
    assert refused["images"] == []
    assert settled_balance(user)["available"] == 9  # only the first task was charged
    gallery = user.get("/v1/images").json()["items"]
    assert [i["task_id"] for i in gallery] == [first["id"]]
    archive = user.get(f"/v1/tasks/{refused['id']}/archive")
    assert archive.status_code == 409 and archive.json()["code"] == "not_finished"
    assert stored_files(stack, first["id"])  # where results are kept …
    assert stored_files(stack, refused["id"]) == []  # … the refused one is not, under any key


@SQLITE
def test_moderation_down_for_a_while_makes_tasks_wait_then_finish(
    moderated_stack: tuple[Stack, FakeModeration],
) -> None:
    stack, moderation = moderated_stack
    user = stack.api.user("wes@example.com")
    upload_id = upload_photo(stack, user)
    moderation.down = True
    r = create(user, {"type": "basic_clean", "params": {}, "input_upload_id": upload_id})
    assert r.status_code == 201, r.text
    wait_until(lambda: len(moderation.images) >= 2, "two tries while moderation is down")
    waiting = user.get(f"/v1/tasks/{r.json()['id']}").json()
    assert waiting["status"] == "processing" and waiting["images"] == []
    # creating a task with a prompt while it is down: 503, nothing done
    down = create(user, {"type": "text_to_image", "params": {"prompt": "a cat"}})
    assert down.status_code == 503 and down.json()["code"] == "unavailable"
    moderation.down = False
    done = wait_for_status(user, r.json()["id"], {"succeeded", "failed"})
    assert done["status"] == "succeeded" and len(done["images"]) == 1
    assert settled_balance(user)["available"] == 9
    assert len(user.get("/v1/tasks").json()["items"]) == 1


@SQLITE
def test_review_timeline_and_overturn_rerun_at_no_charge(
    moderated_stack: tuple[Stack, FakeModeration],
) -> None:
    stack, moderation = moderated_stack
    user = stack.api.user("ola@example.com")
    admin = admin_of(stack, "chief@example.com")
    body = {"type": "text_to_image", "params": {"prompt": "a blue lamp", "width": 256}}
    first = wait_for_status(user, create(user, body).json()["id"], {"succeeded"})
    moderation.blocked_bytes.add(middle(httpx.get(first["images"][0]["url"]).content))
    refused = wait_for_status(user, create(user, body).json()["id"], {"failed"})
    assert settled_balance(user)["available"] == 9

    assert user.get("/v1/admin/moderation").status_code == 403
    review = admin.get("/v1/admin/moderation", params={"verdict": "rejected"})
    assert review.status_code == 200, review.text
    (item,) = review.json()["items"]
    assert item["task_id"] == refused["id"] and item["subject"] == "result_image"
    assert item["verdict"] == "rejected" and item["provider"] == "fake"
    assert item["request_id"] and item["overturned_at"] is None
    assert admin.get("/v1/admin/moderation", params={"verdict": "maybe"}).status_code == 400

    entries = timeline(admin, user.id, 3)
    decisions = [e for e in entries if e["kind"] == "moderation"]
    # the two prompts allowed, the first result allowed, the second refused
    assert len(decisions) == 4
    refusal = next(e for e in decisions if e["moderation"]["id"] == item["id"])
    assert refusal["caused_by"] == {"type": "task", "id": refused["id"]}
    assert refusal["status"] == "rejected"

    path = f"/v1/admin/moderation/{item['id']}/overturn"
    assert user.post(path).status_code == 403
    headers = {"Idempotency-Key": "overturn-1"}
    r = admin.post(path, headers=headers)
    assert r.status_code == 200, r.text
    again = admin.post(path, headers=headers)
    assert again.json() == r.json() and again.headers["idempotent-replayed"] == "true"
    overturned = r.json()
    assert overturned["overturned_by"] == admin.id and overturned["overturned_at"]
    rerun = wait_for_status(user, overturned["rerun_task_id"], {"succeeded", "failed"})
    assert rerun["status"] == "succeeded" and rerun["cost"] == 0 and len(rerun["images"]) == 1
    assert settled_balance(user)["available"] == 9  # nothing charged for the re-run
    assert admin.post(path).json()["rerun_task_id"] == rerun["id"]  # once, whatever the repeats
    assert admin.post(f"/v1/admin/moderation/{first['id']}/overturn").status_code == 404
    bad_body = admin.post(path, json={"x": 1})
    assert bad_body.status_code == 422


def upload_png(user: User, data: bytes) -> str:
    target = user.post("/v1/uploads", json={"content_type": "image/png", "size": len(data)})
    assert target.status_code == 201, target.text
    t = target.json()
    sent = httpx.post(t["url"], data=t["fields"], files={"file": ("p.png", data, "image/png")})
    assert sent.status_code in (200, 201, 204), sent.text
    return str(t["upload_id"])


@SQLITE
def test_the_local_adapter_end_to_end(local_moderated_stack: Stack) -> None:
    stack = local_moderated_stack
    user = stack.api.user("lou@example.com")
    admin = admin_of(stack, "lead@example.com")
    for prompt in ("a zorbleflux on a table", "色情图片", "a p0rn poster"):
        r = create(user, {"type": "text_to_image", "params": {"prompt": prompt}})
        assert r.status_code == 422 and r.json()["code"] == "content_rejected", (prompt, r.text)
    assert user.get("/v1/me/balance").json()["available"] == 10
    ok = create(user, {"type": "text_to_image", "params": {"prompt": "a nude-colour handbag"}})
    assert ok.status_code == 201, ok.text
    assert wait_for_status(user, ok.json()["id"], {"succeeded"})["images"]
    flagged = upload_png(user, flagged_image())
    r = create(user, {"type": "basic_clean", "params": {}, "input_upload_id": flagged})
    refused = wait_for_status(user, r.json()["id"], {"succeeded", "failed"})
    assert refused["status"] == "failed" and refused["error"] == "content_rejected"
    plain = upload_photo(stack, user, product_photo())
    r = create(user, {"type": "basic_clean", "params": {}, "input_upload_id": plain})
    assert wait_for_status(user, r.json()["id"], {"succeeded", "failed"})["status"] == "succeeded"
    assert settled_balance(user)["available"] == 8
    items = admin.get("/v1/admin/moderation", params={"verdict": "rejected"}).json()["items"]
    assert [i["subject"] for i in items] == ["input_image", "prompt", "prompt", "prompt"]
    image = items[0]
    assert image["provider"] == "local" and image["task_id"] == refused["id"]
    assert any(label["confidence"] >= 0.8 for label in image["labels"])
    # newest first: the leetspeak one, the Chinese one, the operator's own term
    assert [[label["name"] for label in i["labels"]] for i in items[1:]] == [
        ["blocked_term:sexual"],
        ["blocked_term:sexual"],
        ["blocked_term:custom"],
    ]

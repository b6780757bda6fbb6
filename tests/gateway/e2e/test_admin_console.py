"""The admin console's backend on the real stack (gateway, billing, tasks with its worker): the
timeline walked page by page across both services, credit adjustments with an Idempotency-Key,
and the task archive of a twelve-image task (whole, and cut short when storage fails)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import httpx
import pytest
from atelier_common.local_objects import object_path

from tests.gateway.conftest import Stack, User
from tests.gateway.e2e.test_tasks import jpeg, wait_for_status

SQLITE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def admin_of(stack: Stack, email: str) -> User:
    user = stack.api.user(email)
    stack.gateway.container.promote_admin(email)
    r = stack.api.http.post("/v1/auth/refresh", json={"refresh_token": user.refresh_token})
    return User(stack.api, user.id, r.json()["access_token"], r.json()["refresh_token"])


def timeline(admin: User, user_id: str, size: int) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    token = ""
    for _ in range(200):
        params: dict[str, Any] = {"page_size": size}
        if token:
            params["page_token"] = token
        r = admin.get(f"/v1/admin/users/{user_id}/timeline", params=params)
        assert r.status_code == 200, r.text
        assert len(r.json()["items"]) <= size
        items += r.json()["items"]
        token = r.json()["next_page_token"]
        if not token:
            return items
    raise AssertionError("the timeline never ended")


def uploaded(user: User) -> str:
    data = jpeg()
    target = user.post("/v1/uploads", json={"content_type": "image/jpeg", "size": len(data)})
    assert target.status_code == 201, target.text
    t = target.json()
    sent = httpx.post(t["url"], data=t["fields"], files={"file": ("p.jpg", data, "image/jpeg")})
    assert sent.status_code in (200, 201, 204), sent.text
    return str(t["upload_id"])


@SQLITE
def test_the_timeline_merges_billing_and_tasks_page_by_page(full_stack: Stack) -> None:
    stack = full_stack
    user = stack.api.user("tess@example.com")
    admin = admin_of(stack, "boss@example.com")
    tasks = []
    for n in range(3):
        params: dict[str, Any] = {"prompt": f"a lamp {n}"}
        if n == 1:
            params["sandbox_outcome"] = "fail"
        r = user.post("/v1/tasks", json={"type": "text_to_image", "params": params})
        assert r.status_code == 201, r.text
        tasks.append(r.json()["id"])
    for task_id in tasks:
        wait_for_status(user, task_id, {"succeeded", "failed"})
    order = user.post("/v1/orders", json={"item_id": "pack_100", "channel": "local"}).json()
    assert (
        stack.api.http.post(order["checkout"]["url"], data={"outcome": "paid"}).status_code == 303
    )
    headers = {"Idempotency-Key": "once"}
    body = {"amount": -2, "reason": "a duplicate bonus"}
    first = admin.post(f"/v1/admin/users/{user.id}/credits", json=body, headers=headers)
    again = admin.post(f"/v1/admin/users/{user.id}/credits", json=body, headers=headers)
    assert first.status_code == again.status_code == 200, first.text
    assert again.headers["idempotent-replayed"] == "true" and again.json() == first.json()
    refund = admin.post(f"/v1/admin/orders/{order['id']}/refund", json={"reason": "test"})
    assert refund.status_code == 200, refund.text

    everything = timeline(admin, user.id, 100)
    ids = [e["id"] for e in everything]
    assert len(set(ids)) == len(ids)
    times = [e["at"] for e in everything]
    assert times == sorted(times, reverse=True)
    for size in (1, 2, 3, 7):
        assert [e["id"] for e in timeline(admin, user.id, size)] == ids, size
    kinds = [e["kind"] for e in everything]
    assert kinds.count("task") == 3 and kinds.count("payment") == kinds.count("refund") == 1
    assert kinds.count("adjust") >= 2  # the admin's (once) and the refund's clawback
    assert [e["reason"] for e in everything if e["reason"] == "a duplicate bonus"] == [
        "a duplicate bonus"
    ]
    task_ids = {e["id"].removeprefix("task:") for e in everything if e["kind"] == "task"}
    assert task_ids == set(tasks)
    for e in everything:
        if e["kind"] in ("hold", "capture", "release"):
            assert e["caused_by"]["type"] == "task" and e["caused_by"]["id"] in task_ids, e
        if e["kind"] in ("payment", "refund"):
            assert e["caused_by"] == {"type": "order", "id": order["id"]}
    [failed] = [e for e in everything if e["id"] == f"task:{tasks[1]}"]
    assert failed["status"] == "failed" and failed["reason"]
    assert {"type": "order", "id": order["id"]} in [
        e["caused_by"] for e in everything if e["kind"] == "grant"
    ]
    assert {"type": "signup", "id": None} in [
        e["caused_by"] for e in everything if e["kind"] == "grant"
    ]
    # the user's page shows the adjusted balance and the same tasks, with their owner
    page = admin.get(f"/v1/admin/users/{user.id}").json()
    assert page["balance"]["available"] == user.get("/v1/me/balance").json()["available"]
    assert {t["id"] for t in page["recent_tasks"]} == set(tasks)
    assert {t["user_id"] for t in page["recent_tasks"]} == {user.id}


@SQLITE
def test_the_archive_of_twelve_images_whole_and_cut_short(
    full_stack: Stack, tmp_path: Path
) -> None:
    user = full_stack.api.user("ugo@example.com")
    r = user.post(
        "/v1/tasks",
        json={
            "type": "model_pose12",
            "params": {"scene": "studio", "category": "coat"},
            "input_upload_id": uploaded(user),
        },
    )
    assert r.status_code == 201, r.text
    task = wait_for_status(user, r.json()["id"], {"succeeded"})
    assert len(task["images"]) == 12
    whole = user.get(f"/v1/tasks/{task['id']}/archive")
    assert whole.status_code == 200
    with zipfile.ZipFile(io.BytesIO(whole.content)) as z:
        names = z.namelist()
        contents = [z.read(name) for name in names]
    assert names == [f"model_pose12-{task['id']}-{n:02d}.png" for n in range(1, 13)]
    images = sorted(task["images"], key=lambda i: i["index"])
    assert contents == [httpx.get(i["url"]).content for i in images]

    # storage loses the seventh image: the download breaks instead of ending as a valid zip
    key = images[6]["url"].split("/files/", 1)[1].split("?", 1)[0]
    object_path(tmp_path / "data" / "objects", key).unlink()
    with pytest.raises(httpx.HTTPError):
        user.get(f"/v1/tasks/{task['id']}/archive")
    # and before the first byte: a clean problem
    object_path(
        tmp_path / "data" / "objects", images[0]["url"].split("/files/", 1)[1].split("?")[0]
    ).unlink()
    gone = user.get(f"/v1/tasks/{task['id']}/archive")
    assert gone.status_code == 503 and gone.json()["code"] == "unavailable"

"""Uploads, tasks, live events, images and files through the gateway, with billing and tasks
running behind it for real (SQLite and PostgreSQL)."""

from __future__ import annotations

import io
import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.gateway.conftest import Stack, User


def jpeg(width: int = 320, height: int = 240) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (200, 120, 40)).save(buf, "JPEG")
    return buf.getvalue()


def upload_photo(stack: Stack, user: User, data: bytes | None = None) -> str:
    data = data or jpeg()
    r = user.post("/v1/uploads", json={"content_type": "image/jpeg", "size": len(data)})
    assert r.status_code == 201, r.text
    target = r.json()
    assert target["method"] == "POST"
    assert target["url"].startswith(stack.gateway.url)
    sent = httpx.post(
        target["url"], data=target["fields"], files={"file": ("p.jpg", data, "image/jpeg")}
    )
    assert sent.status_code == 201, sent.text
    return str(target["upload_id"])


def read_events(user: User, task_id: str, last_event_id: str | None = None) -> list[dict[str, Any]]:
    headers = {**user.auth, "Accept": "text/event-stream"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id
    events: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    with user.api.http.stream(
        "GET", f"/v1/tasks/{task_id}/events", headers=headers, timeout=60
    ) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if line.startswith("id: "):
                current["id"] = line[4:]
            elif line.startswith("event: "):
                current["event"] = line[7:]
            elif line.startswith("data: "):
                current["data"] = json.loads(line[6:])
            elif line == "" and "data" in current:
                events.append(current)
                current = {}
    return events


def wait_for_status(user: User, task_id: str, statuses: set[str]) -> dict[str, Any]:
    # The SSE stream ends after the terminal event, so this is a bounded wait, not a sleep.
    read_events(user, task_id)
    task = user.get(f"/v1/tasks/{task_id}").json()
    assert task["status"] in statuses, task
    return dict(task)


def settled_balance(user: User, timeout: float = 20.0) -> dict[str, Any]:
    """The balance once no credits are held. Tasks settle holds (capture or release) in a worker
    phase right after the terminal status, so this waits for that, within a deadline."""
    deadline = time.monotonic() + timeout
    while True:
        balance = dict(user.get("/v1/me/balance").json())
        if balance["held"] == 0 or time.monotonic() > deadline:
            return balance
        time.sleep(0.05)


def test_basic_clean_end_to_end(full_stack: Stack) -> None:
    stack = full_stack
    user = stack.api.user("ann@example.com")
    upload_id = upload_photo(stack, user)
    r = user.post("/v1/tasks", json={"type": "basic_clean", "input_upload_id": upload_id})
    assert r.status_code == 201, r.text
    task = r.json()
    assert task["type"] == "basic_clean" and task["cost"] == 1
    assert task["status"] in ("pending", "processing", "succeeded")

    events = read_events(user, task["id"])
    statuses = [e["data"]["status"] for e in events]
    assert statuses[-1] == "succeeded"
    assert "processing" in statuses
    assert [int(e["id"]) for e in events] == list(range(1, len(events) + 1))
    assert events[-1]["data"]["terminal"] is True

    # Resuming after the first event replays exactly the rest.
    rest = read_events(user, task["id"], last_event_id="1")
    assert [e["id"] for e in rest] == [e["id"] for e in events[1:]]

    done = user.get(f"/v1/tasks/{task['id']}").json()
    assert done["status"] == "succeeded" and done["finished_at"]
    assert len(done["images"]) == 1
    image = done["images"][0]
    for url in (image["url"], image["thumbnail_url"]):
        got = httpx.get(url)
        assert got.status_code == 200
        Image.open(io.BytesIO(got.content)).verify()
    assert image["width"] > 0 and image["size"] > 0

    assert user.get("/v1/me/balance").json()["available"] == 9
    gallery = user.get("/v1/images").json()
    assert [i["id"] for i in gallery["items"]] == [image["id"]]
    stats = user.get("/v1/me/stats").json()
    assert stats["total_tasks"] == 1 and stats["succeeded"] == 1 and stats["total_images"] == 1
    listed = user.get("/v1/tasks", params={"status": "succeeded"}).json()
    assert [t["id"] for t in listed["items"]] == [task["id"]]
    assert user.get("/v1/tasks", params={"type": "text_to_image"}).json()["items"] == []


def test_a_failed_task_is_refunded(full_stack: Stack) -> None:
    user = full_stack.api.user("bo@example.com")
    r = user.post(
        "/v1/tasks",
        json={
            "type": "text_to_image",
            "params": {"prompt": "a red cube", "sandbox_outcome": "fail"},
        },
    )
    assert r.status_code == 201, r.text
    task = wait_for_status(user, r.json()["id"], {"failed"})
    assert task["error"]
    balance = settled_balance(user)
    assert balance["available"] == 10 and balance["held"] == 0
    kinds = [e["kind"] for e in user.get("/v1/me/ledger").json()["items"]]
    assert "hold" in kinds and "release" in kinds


def test_cancel_releases_the_hold(paused_stack: Stack) -> None:
    user = paused_stack.api.user("cy@example.com")
    task = user.post("/v1/tasks", json={"type": "text_to_image", "params": {"prompt": "x"}}).json()
    assert user.get("/v1/me/balance").json()["held"] == 1
    r = user.post(f"/v1/tasks/{task['id']}/cancel")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "cancelled"
    balance = user.get("/v1/me/balance").json()
    assert balance["available"] == 10 and balance["held"] == 0
    again = user.post(f"/v1/tasks/{task['id']}/cancel")
    assert again.status_code == 409
    events = read_events(user, task["id"])
    assert events[-1]["data"]["status"] == "cancelled"


def test_race_forty_tasks_on_ten_credits(paused_stack: Stack) -> None:
    user = paused_stack.api.user("race@example.com")

    def create(i: int) -> int:
        with httpx.Client(base_url=paused_stack.gateway.url, timeout=60) as c:
            return c.post(
                "/v1/tasks",
                headers=user.auth,
                json={"type": "text_to_image", "params": {"prompt": f"p{i}"}},
            ).status_code

    with ThreadPoolExecutor(40) as pool:
        codes = list(pool.map(create, range(40)))
    assert codes.count(201) == 10, codes
    assert codes.count(402) == 30, codes
    balance = user.get("/v1/me/balance").json()
    assert balance["available"] == 0 and balance["held"] == 10
    problem = user.post("/v1/tasks", json={"type": "text_to_image", "params": {"prompt": "p"}})
    assert problem.status_code == 402
    assert problem.json()["code"] == "insufficient_credits"


def test_idempotency_key_on_tasks_charges_once(paused_stack: Stack) -> None:
    user = paused_stack.api.user("dee@example.com")
    body = {"type": "text_to_image", "params": {"prompt": "same"}}
    first = user.post("/v1/tasks", json=body, headers={"Idempotency-Key": "t-1"})
    second = user.post("/v1/tasks", json=body, headers={"Idempotency-Key": "t-1"})
    assert first.status_code == second.status_code == 201
    assert first.json()["id"] == second.json()["id"]
    other = user.post(
        "/v1/tasks",
        json={"type": "text_to_image", "params": {"prompt": "different"}},
        headers={"Idempotency-Key": "t-1"},
    )
    assert other.status_code == 409
    assert user.get("/v1/me/balance").json()["available"] == 9
    assert len(user.get("/v1/tasks").json()["items"]) == 1


def test_isolation_matrix(full_stack: Stack) -> None:
    stack = full_stack
    alice = stack.api.user("alice@example.com")
    bob = stack.api.user("bob@example.com")
    task = alice.post("/v1/tasks", json={"type": "text_to_image", "params": {"prompt": "a"}})
    task_id = task.json()["id"]
    wait_for_status(alice, task_id, {"succeeded"})
    order = alice.post("/v1/orders", json={"item_id": "pack_100", "channel": "local"}).json()
    for r in (
        bob.get(f"/v1/tasks/{task_id}"),
        bob.get(f"/v1/tasks/{task_id}/events"),
        bob.post(f"/v1/tasks/{task_id}/cancel"),
        bob.get(f"/v1/orders/{order['id']}"),
        bob.post(f"/v1/orders/{order['id']}/refresh"),
    ):
        assert r.status_code == 404, r.text
        assert r.json()["code"] == "not_found"
    assert bob.get("/v1/images").json()["items"] == []
    assert bob.get("/v1/tasks").json()["items"] == []


def test_bad_task_input_changes_nothing(paused_stack: Stack) -> None:
    user = paused_stack.api.user("eve@example.com")
    cases: list[tuple[Any, int, str]] = [
        ({"type": "paint_a_house", "params": {}}, 422, "type"),
        ({"type": 3}, 422, "type"),
        ({"type": "text_to_image", "params": "a cat"}, 422, "params"),
        ({"type": "text_to_image", "params": {"prompt": "x" * 2001}}, 422, ""),
        ({"type": "text_to_image", "params": {}}, 422, ""),
        ({"type": "basic_clean"}, 422, ""),
    ]
    for body, status, field in cases:
        r = user.post("/v1/tasks", json=body)
        assert r.status_code == status, (body, r.text)
        assert r.json()["code"] == "validation_error"
        if field:
            assert r.json()["field"] == field
    r = user.post("/v1/tasks", content=b"{", headers={"content-type": "application/json"})
    assert r.status_code == 400
    assert user.get("/v1/tasks").json()["items"] == []
    assert user.get("/v1/me/balance").json()["available"] == 10


def test_files_refuse_tampered_and_expired_links_and_bad_uploads(full_stack: Stack) -> None:
    stack = full_stack
    user = stack.api.user("fay@example.com")
    data = jpeg()
    target = user.post("/v1/uploads", json={"content_type": "image/jpeg", "size": len(data)}).json()
    fields = dict(target["fields"])

    tampered = {**fields, "max_size": str(10**9)}
    r = httpx.post(target["url"], data=tampered, files={"file": ("p.jpg", data, "image/jpeg")})
    assert r.status_code == 403
    r = httpx.post(target["url"], data=fields, files={"file": ("p.png", data, "image/png")})
    assert r.status_code == 403
    big = b"\xff\xd8\xff" + b"0" * int(fields["max_size"])
    r = httpx.post(target["url"], data=fields, files={"file": ("p.jpg", big, "image/jpeg")})
    assert r.status_code == 413
    r = httpx.post(
        target["url"], data=fields, files={"file": ("p.jpg", b"not a jpeg", "image/jpeg")}
    )
    assert r.status_code == 422

    upload_id = upload_photo(stack, user, data)
    task = user.post("/v1/tasks", json={"type": "basic_clean", "input_upload_id": upload_id})
    done = wait_for_status(user, task.json()["id"], {"succeeded"})
    url = httpx.URL(done["images"][0]["url"])
    assert httpx.get(url).status_code == 200
    bad_sig = url.copy_merge_params({"signature": "0" * 64})
    assert httpx.get(bad_sig).status_code == 403
    expired = url.copy_merge_params({"expires": str(int(time.time()) - 10)})
    assert httpx.get(expired).status_code == 403
    other_key = str(url).replace(user.id, "usr_someone_else")
    assert httpx.get(other_key).status_code == 403


def test_concurrent_retries_with_one_idempotency_key_create_one_task(paused_stack: Stack) -> None:
    user = paused_stack.api.user("gia@example.com")
    body = {"type": "text_to_image", "params": {"prompt": "once"}}

    def create(_: int) -> httpx.Response:
        with httpx.Client(base_url=paused_stack.gateway.url, timeout=60) as c:
            return c.post("/v1/tasks", json=body, headers={**user.auth, "Idempotency-Key": "same"})

    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(create, range(8)))
    created = {r.json()["id"] for r in responses if r.status_code == 201}
    assert len(created) == 1
    for r in responses:
        assert r.status_code == 201 or r.json()["code"] == "idempotency_key_in_flight", r.text
    assert len(user.get("/v1/tasks").json()["items"]) == 1
    assert user.get("/v1/me/balance").json()["available"] == 9


def test_admin_task_listing_checks_the_role(paused_stack: Stack) -> None:
    user = paused_stack.api.user("ops@example.com")
    assert user.get("/v1/admin/tasks").status_code == 403
    paused_stack.gateway.container.promote_admin("ops@example.com")
    r = paused_stack.api.http.post("/v1/auth/refresh", json={"refresh_token": user.refresh_token})
    admin = User(user.api, user.id, r.json()["access_token"], r.json()["refresh_token"])
    listing = admin.get("/v1/admin/tasks", params={"status": "pending"})
    assert listing.status_code == 200, listing.text
    assert "items" in listing.json()
    bad = admin.get("/v1/admin/tasks", params={"status": "sleeping"})
    assert bad.status_code == 400 and bad.json()["field"] == "status"


def test_admins_see_every_users_tasks_and_users_are_refused(paused_stack: Stack) -> None:
    owner = paused_stack.api.user("owner@example.com")
    task = owner.post("/v1/tasks", json={"type": "text_to_image", "params": {"prompt": "x"}})
    assert task.status_code == 201, task.text
    other = paused_stack.api.user("root@example.com")
    refused = other.get("/v1/admin/tasks")
    assert refused.status_code == 403 and refused.json()["code"] == "forbidden"
    paused_stack.gateway.container.promote_admin("root@example.com")
    r = paused_stack.api.http.post("/v1/auth/refresh", json={"refresh_token": other.refresh_token})
    admin = User(other.api, other.id, r.json()["access_token"], r.json()["refresh_token"])
    assert admin.get("/v1/tasks").json()["items"] == []
    listing = admin.get("/v1/admin/tasks", params={"type": "text_to_image"})
    assert listing.status_code == 200, listing.text
    assert [t["id"] for t in listing.json()["items"]] == [task.json()["id"]]


def test_forged_generation_webhooks_are_400(full_stack: Stack) -> None:
    for provider in ("replicate", "runninghub"):
        r = full_stack.api.http.post(
            f"/webhooks/{provider}",
            content=b'{"id": "job-1", "status": "succeeded"}',
            headers={"content-type": "application/json", "webhook-signature": "v1,forged"},
        )
        assert r.status_code == 400, (provider, r.text)
        assert r.json()["code"] == "invalid_signature"
    metrics = full_stack.api.http.get("/metrics").text
    assert 'atelier_gateway_webhooks_total{provider="replicate",status="400"} 1.0' in metrics


def test_a_client_leaving_an_event_stream_is_not_an_error(
    paused_stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    user = paused_stack.api.user("hal@example.com")
    task = user.post("/v1/tasks", json={"type": "text_to_image", "params": {"prompt": "x"}}).json()
    with user.api.http.stream(
        "GET", f"/v1/tasks/{task['id']}/events", headers=user.auth, timeout=30
    ) as r:
        lines = r.iter_lines()
        assert next(line for line in lines if line.startswith("data: "))  # pending
    # The task is still pending, so the stream was open when we left. The gateway notices
    # within a tick and lets go of the watch stream on the tasks service.
    from atelier_gateway.entrypoints.http.context import OPEN_STREAMS

    streams = paused_stack.gateway.app[OPEN_STREAMS]
    deadline = time.monotonic() + 5
    while streams and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not streams
    assert user.get(f"/v1/tasks/{task['id']}").json()["status"] == "pending"
    assert "unhandled error" not in caplog.text


def test_daily_limit_is_429_and_holds_nothing(daily_limited_stack: Stack) -> None:
    user = daily_limited_stack.api.user("ivo@example.com")
    body = {"type": "text_to_image", "params": {"prompt": "x"}}
    assert [user.post("/v1/tasks", json=body).status_code for _ in range(2)] == [201, 201]
    r = user.post("/v1/tasks", json=body)
    assert r.status_code == 429, r.text
    assert r.json()["code"] == "daily_limit_reached"
    balance = user.get("/v1/me/balance").json()
    assert balance["available"] == 8 and balance["held"] == 2
    assert len(user.get("/v1/tasks").json()["items"]) == 2

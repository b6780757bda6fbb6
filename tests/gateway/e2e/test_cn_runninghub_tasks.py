"""MARKET=cn model photos through the public HTTP API: the gateway, the real billing service and the
tasks service (its worker running) wired to the local RunningHub server
(``tests/support/runninghub_server.py``). Storage and basic_clean are pinned to the local adapters
here (``TASKS_STORAGE`` / ``TASKS_PROVIDER_BASIC_CLEAN``), so this test is about RunningHub only.

The server counts every call naming a task: the proof that RunningHub is never asked about a task
once it is terminal, and that reading tasks (GET, list, the event stream) never asks it."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.gateway.conftest import Api, Stack, User
from tests.gateway.e2e.test_tasks import read_events, settled_balance, upload_photo
from tests.gateway.harness import (
    gateway_settings,
    reserve_socket,
    start_gateway,
    start_tasks_server,
)
from tests.support.billing_server import start_billing_server
from tests.support.runninghub_server import (
    NODE_PROMPT,
    NODE_SEED,
    FakeRunningHub,
)
from tests.tasks.conftest import wait_until


@dataclass
class CnTasks:
    stack: Stack
    rh: FakeRunningHub


@pytest.fixture
def cn_tasks(
    database_url: str, billing_database_url: str, tasks_database_url: str, tmp_path: Path
) -> Iterator[CnTasks]:
    sock = reserve_socket()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    # Two status calls queued, two running (and at least 0.2 s each): a real poll sequence.
    rh = FakeRunningHub(queued_polls=2, running_polls=2, queued_seconds=0.2, running_seconds=0.2)
    billing = start_billing_server(
        billing_database_url,
        MARKET="cn",
        PAYMENT_CHANNELS="local",
        LOCAL_PAYMENT_CURRENCY="CNY",
        GATEWAY_PUBLIC_URL=url,
        ATELIER_DATA_DIR=str(tmp_path / "billing-data"),
    )
    data_dir = str(tmp_path / "data")
    tasks = start_tasks_server(
        tasks_database_url,
        MARKET="cn",
        MODERATION_PROVIDER="local",  # Tencent moderation: test_cn_market_tasks.py, journey
        TASKS_STORAGE="local",
        TASKS_PROVIDER_BASIC_CLEAN="local",
        ATELIER_DATA_DIR=data_dir,
        ATELIER_INTERNAL_TOKEN=billing.internal_token,
        BILLING_ADDRESS=billing.address,
        GATEWAY_PUBLIC_URL=url,
        TASKS_WORKER_IDLE_SECONDS=0.05,
        **rh.tasks_settings(),
        RUNNINGHUB_POLL_MIN_SECONDS=0.05,
        RUNNINGHUB_POLL_MAX_SECONDS=0.2,
    )
    settings = gateway_settings(
        data_dir,
        database_url,
        MARKET="cn",
        SMS_PROVIDER="console",
        GATEWAY_PUBLIC_URL=url,
        BILLING_ADDRESS=billing.address,
        TASKS_ADDRESS=f"127.0.0.1:{tasks.port}",
        ATELIER_INTERNAL_TOKEN=billing.internal_token,
    )
    gw = start_gateway(settings, sock=sock)
    api = Api(gw.url)
    try:
        yield CnTasks(Stack(gateway=gw, billing=billing, api=api, tasks=tasks), rh)
    finally:
        api.close()
        gw.stop()
        tasks.stop()
        billing.stop()
        rh.close()


def garment() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (160, 200), (30, 60, 160)).save(buf, "JPEG")
    return buf.getvalue()


def pose12(cn: CnTasks, user: User, **params: str) -> str:
    key = upload_photo(cn.stack, user, garment())
    r = user.post(
        "/v1/tasks",
        json={"type": "model_pose12", "params": params, "input_upload_id": key},
    )
    assert r.status_code == 201, r.text
    task = r.json()
    assert "prompt" not in str(task)  # the server-side prompt is never shown
    return str(task["id"])


def rh_task(cn: CnTasks, index: int) -> str:
    wait_until(lambda: len(cn.rh.tasks) > index, what="the RunningHub task")
    return list(cn.rh.tasks)[index]


def reads(user: User, task_id: str) -> None:
    """Everything a client reads about a task: one, the list, the images, the event stream."""
    assert user.get(f"/v1/tasks/{task_id}").status_code == 200
    assert user.get("/v1/tasks").status_code == 200
    assert user.get("/v1/images").status_code == 200
    read_events(user, task_id)


def test_model_pose12_on_runninghub_charges_and_delivers_twelve_images(cn_tasks: CnTasks) -> None:
    cn, started = cn_tasks, time.monotonic()
    user = cn.stack.api.user("mei@example.com")
    before = settled_balance(user)
    task_id = pose12(cn, user, scene="street", category="coat")
    job = rh_task(cn, 0)
    assert job.isdigit() and len(job) == 19
    nodes = cn.rh.node_values(job)
    assert "coat" in nodes[NODE_PROMPT] and "city street" in nodes[NODE_PROMPT]
    assert nodes[NODE_SEED].isdigit()

    events = read_events(user, task_id)  # until the terminal event: no sleeping
    assert events[-1]["data"]["status"] == "succeeded", events[-1]
    done = user.get(f"/v1/tasks/{task_id}").json()
    assert done["status"] == "succeeded" and len(done["images"]) == 12
    assert cn.rh.url not in str(done)  # vendor URLs are never handed out
    for image in done["images"][:2]:
        got = httpx.get(image["url"])
        assert got.status_code == 200
        Image.open(io.BytesIO(got.content)).verify()
    after = settled_balance(user)
    assert after["held"] == 0
    assert before["available"] - after["available"] == 1  # cn: one generation

    status_calls, all_calls = cn.rh.status_counts[job], cn.rh.calls[job]
    assert status_calls >= 5  # two queued, two running, then SUCCESS
    assert all_calls == status_calls + 1  # and one outputs call
    for _ in range(3):
        reads(user, task_id)
    r = cn.stack.api.http.post("/webhooks/runninghub", content=cn.rh.webhook_body(job))
    assert r.status_code == 200 and r.json()["applied"] is False  # terminal: nothing asked
    assert (cn.rh.status_counts[job], cn.rh.calls[job]) == (status_calls, all_calls)
    print(
        f"\nRunningHub calls for one model_pose12 task: {status_calls} status + "
        f"{all_calls - status_calls} outputs; test time {time.monotonic() - started:.2f} s"
    )


def test_a_failed_runninghub_task_is_refunded_and_never_asked_again(cn_tasks: CnTasks) -> None:
    cn = cn_tasks
    user = cn.stack.api.user("lan@example.com")
    before = settled_balance(user)
    cn.rh.fail_next = "CUDA out of memory"
    task_id = pose12(cn, user)
    job = rh_task(cn, 0)
    events = read_events(user, task_id)
    assert events[-1]["data"]["status"] == "failed"
    task = user.get(f"/v1/tasks/{task_id}").json()
    assert "CUDA out of memory" in str(task), task
    assert settled_balance(user) == before  # the hold was released
    calls = cn.rh.calls[job]
    reads(user, task_id)
    assert (
        cn.stack.api.http.post("/webhooks/runninghub", content=cn.rh.webhook_body(job)).json()[
            "applied"
        ]
        is False
    )
    assert cn.rh.calls[job] == calls


def test_fewer_than_twelve_outputs_fail_and_refund(cn_tasks: CnTasks) -> None:
    cn = cn_tasks
    user = cn.stack.api.user("bo@example.com")
    before = settled_balance(user)
    cn.rh.outputs_next = 7
    task_id = pose12(cn, user)
    events = read_events(user, task_id)
    assert events[-1]["data"]["status"] == "failed"
    assert "7 of 12" in str(user.get(f"/v1/tasks/{task_id}").json())
    assert settled_balance(user) == before


def test_the_webhook_is_a_hint_to_poll_at_once(cn_tasks: CnTasks) -> None:
    cn = cn_tasks
    user = cn.stack.api.user("yu@example.com")
    task_id = pose12(cn, user)
    job = rh_task(cn, 0)
    wait_until(lambda: cn.rh.status_counts[job] >= 1, what="the first status call")
    cn.rh.finish_now(job)
    assert cn.rh.send_webhook(job) == 200  # unsigned, like RunningHub's
    events = read_events(user, task_id)
    assert events[-1]["data"]["status"] == "succeeded"
    bad = cn.stack.api.http.post("/webhooks/runninghub", content=b'{"taskId": "x"}')
    assert bad.status_code == 400
    unknown: Any = cn.stack.api.http.post(
        "/webhooks/runninghub", content=b'{"event": "TASK_END", "taskId": "1234567890123456789"}'
    ).json()
    assert unknown["applied"] is False

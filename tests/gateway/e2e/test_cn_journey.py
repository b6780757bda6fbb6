"""The whole cn market over HTTP, every vendor on its local protocol server at once: log in by SMS
(Tencent Cloud SMS, TC3-checked) → a membership paid by WeChat Pay (signed, encrypted notification
through ``/webhooks/wechatpay``) → a garment photo PUT straight into COS → ``model_pose12`` on
RunningHub → 12 images in COS behind signed URLs → ``basic_clean`` through Cloud Infinite → a
RunningHub task made to fail is refunded → the ledger shows every movement (issues 11 and 12)."""

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

from tests.gateway.conftest import Api, User
from tests.gateway.e2e.test_tasks import read_events, settled_balance
from tests.gateway.harness import (
    gateway_settings,
    reserve_socket,
    start_gateway,
    start_tasks_server,
)
from tests.support.billing_server import start_billing_server
from tests.support.cos_server import FakeCos
from tests.support.runninghub_server import (
    FakeRunningHub,
)
from tests.support.tencent_moderation_server import FakeTencentModeration
from tests.support.tencent_sms_server import FakeTencentSms
from tests.support.wechatpay_server import (
    WeChatPayServer,
)


@dataclass
class Vendors:
    api: Api
    wechat: WeChatPayServer
    sms: FakeTencentSms
    cos: FakeCos
    rh: FakeRunningHub


@pytest.fixture
def cn(
    database_url: str, billing_database_url: str, tasks_database_url: str, tmp_path: Path
) -> Iterator[Vendors]:
    sock = reserve_socket()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    sms, cos = FakeTencentSms(), FakeCos()
    rh = FakeRunningHub(queued_polls=1, running_polls=1)
    moderation = FakeTencentModeration()
    with WeChatPayServer() as wechat:
        billing = start_billing_server(
            billing_database_url,
            MARKET="cn",
            GATEWAY_PUBLIC_URL=url,
            ATELIER_DATA_DIR=str(tmp_path / "billing-data"),
            **wechat.billing_settings(tmp_path),
        )
        tasks = start_tasks_server(
            tasks_database_url,
            MARKET="cn",
            ATELIER_DATA_DIR=str(tmp_path / "data"),
            ATELIER_INTERNAL_TOKEN=billing.internal_token,
            BILLING_ADDRESS=billing.address,
            GATEWAY_PUBLIC_URL=url,
            TASKS_WORKER_IDLE_SECONDS=0.05,
            **cos.tasks_settings(),
            **rh.tasks_settings(),
            **moderation.tasks_settings(),  # the market's moderation: Tencent TMS + IMS
            RUNNINGHUB_POLL_MIN_SECONDS=0.05,
            RUNNINGHUB_POLL_MAX_SECONDS=0.2,
        )
        settings = gateway_settings(
            str(tmp_path / "data"),
            database_url,
            MARKET="cn",  # SMS by Tencent Cloud: the market's default
            GATEWAY_PUBLIC_URL=url,
            BILLING_ADDRESS=billing.address,
            TASKS_ADDRESS=f"127.0.0.1:{tasks.port}",
            ATELIER_INTERNAL_TOKEN=billing.internal_token,
            **sms.gateway_settings(),
        )
        gateway = start_gateway(settings, sock=sock)
        api = Api(gateway.url)
        try:
            yield Vendors(api, wechat, sms, cos, rh)
        finally:
            api.close()
            gateway.stop()
            tasks.stop()
            billing.stop()
            rh.close()
            cos.close()
            sms.close()
            moderation.close()


def sms_log_in(cn: Vendors, phone: str) -> User:
    assert cn.api.http.post("/v1/auth/sms/send", json={"phone": phone}).status_code == 202
    (code,) = cn.sms.codes_sent_to("+86" + phone)
    r = cn.api.http.post("/v1/auth/sms/verify", json={"phone": phone, "code": code})
    assert r.status_code == 200, r.text
    body = r.json()
    return User(cn.api, body["user"]["id"], body["access_token"], body["refresh_token"])


def garment_in_cos(cn: Vendors, user: User) -> str:
    photo = io.BytesIO()
    Image.new("RGB", (300, 400), (30, 60, 160)).save(photo, "JPEG")
    data = photo.getvalue()
    r = user.post("/v1/uploads", json={"content_type": "image/jpeg", "size": len(data)})
    assert r.status_code == 201, r.text
    target = r.json()
    assert target["method"] == "PUT" and target["credentials"]["prefix"] == f"{user.id}/uploads/"
    sent = httpx.put(target["url"], content=data, headers=target["headers"])
    assert sent.status_code == 200, sent.text
    assert cn.cos.objects[target["upload_id"]].data == data  # straight into COS
    return str(target["upload_id"])


def run(user: User, task_type: str, upload_id: str, **params: Any) -> dict[str, Any]:
    r = user.post(
        "/v1/tasks", json={"type": task_type, "params": params, "input_upload_id": upload_id}
    )
    assert r.status_code == 201, r.text
    assert r.json()["cost"] == 1  # cn: every type costs one generation
    task_id = r.json()["id"]
    events = read_events(user, task_id)  # until the terminal event: no sleeping
    assert events[-1]["data"]["terminal"] is True
    done: dict[str, Any] = user.get(f"/v1/tasks/{task_id}").json()
    return done


def test_sms_wechat_cos_runninghub_cloud_infinite_journey(cn: Vendors) -> None:
    started = time.monotonic()
    user = sms_log_in(cn, "13900139000")
    assert user.get("/v1/me/balance").json()["available"] == 10  # the sign-up bonus

    order = user.post("/v1/orders", json={"item_id": "plan_monthly", "channel": "wechatpay"})
    assert order.status_code == 201, order.text
    assert (order.json()["amount"], order.json()["currency"]) == (9900, "CNY")
    assert cn.wechat.pay_and_notify(order.json()["number"]) == 200
    membership = user.get("/v1/me/balance").json()["membership"]
    assert (membership["active"], membership["quota_left"]) == (True, 100)

    upload_id = garment_in_cos(cn, user)
    pose12 = run(user, "model_pose12", upload_id, scene="studio", category="dress")
    assert pose12["status"] == "succeeded", pose12
    assert len(pose12["images"]) == 12
    (job,) = cn.rh.tasks
    for image in pose12["images"]:
        assert image["url"].startswith(f"{cn.cos.url}/{user.id}/tasks/{pose12['id']}/")
        assert "q-signature=" in image["url"]  # signed, short-lived COS URLs
    got = httpx.get(pose12["images"][0]["url"])
    assert got.status_code == 200
    Image.open(io.BytesIO(got.content)).verify()
    status_calls = cn.rh.status_counts[job]

    clean = run(user, "basic_clean", upload_id)
    assert clean["status"] == "succeeded", clean
    assert len(cn.cos.processed) == 1  # one Cloud Infinite call

    cn.rh.fail_next = "CUDA out of memory"
    failed = run(user, "model_pose12", upload_id, scene="street", category="coat")
    assert failed["status"] == "failed" and "CUDA out of memory" in str(failed)

    balance = settled_balance(user)
    assert balance["available"] == 10 + 100 - 2  # two charged, the failed one given back
    assert sum(g["remaining"] for g in balance["grants"]) == 108  # bonus + membership quota
    kinds = [
        e["kind"] for e in user.get("/v1/me/ledger", params={"page_size": 100}).json()["items"]
    ]
    assert sorted(kinds) == sorted(["grant", "grant", *["hold"] * 3, *["capture"] * 2, "release"])
    assert cn.rh.status_counts[job] == status_calls  # never asked again once terminal
    print(
        f"\ncn journey (SMS → WeChat → COS → RunningHub → Cloud Infinite → refund): "
        f"{time.monotonic() - started:.2f} s; RunningHub status calls for the model_pose12 task: "
        f"{status_calls}"
    )

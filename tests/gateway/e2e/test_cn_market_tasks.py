"""MARKET=cn tasks through the public HTTP API: the gateway, the real billing service and the tasks
service (its worker running) wired to Tencent COS (storage, STS upload keys) and Cloud Infinite
(``basic_clean``) — here the local COS server of ``tests/support/cos_server.py``, which checks
every q-sign signature and enforces the policy of the temporary keys it issued. The browser's
part is played with plain HTTP (the presigned PUT) and with the COS SDK on the STS keys (what the
COS JavaScript SDK does)."""

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
from qcloud_cos import CosConfig, CosS3Client, CosServiceError

from tests.gateway.conftest import Api, User
from tests.gateway.harness import (
    RunningGateway,
    gateway_settings,
    reserve_socket,
    start_gateway,
    start_tasks_server,
)
from tests.support import cos_server
from tests.support.billing_server import RunningBilling, start_billing_server
from tests.support.cos_server import FakeCos
from tests.support.tencent_moderation_server import FakeTencentModeration
from tests.tasks.conftest import wait_until


@dataclass
class CnTasksStack:
    gateway: RunningGateway
    billing: RunningBilling
    tasks: Any
    api: Api
    cos: FakeCos
    moderation: FakeTencentModeration


@pytest.fixture
def cn_stack(
    database_url: str, billing_database_url: str, tasks_database_url: str, tmp_path: Path
) -> Iterator[CnTasksStack]:
    sock = reserve_socket()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    cos = FakeCos()
    moderation = FakeTencentModeration()
    billing = start_billing_server(
        billing_database_url,
        GATEWAY_PUBLIC_URL=url,
        ATELIER_DATA_DIR=str(tmp_path / "b"),
        MARKET="cn",
        PAYMENT_CHANNELS="local",  # payments are another test's subject (test_wechatpay.py)
        LOCAL_PAYMENT_CURRENCY="CNY",
    )
    tasks = start_tasks_server(
        tasks_database_url,
        MARKET="cn",
        ATELIER_DATA_DIR=str(tmp_path / "data"),
        ATELIER_INTERNAL_TOKEN=billing.internal_token,
        BILLING_ADDRESS=billing.address,
        GATEWAY_PUBLIC_URL=url,
        TASKS_WORKER_IDLE_SECONDS=0.05,
        TASKS_PROVIDER_MODEL_POSE12="local",  # RunningHub: test_cn_runninghub_tasks.py, journey
        **cos.tasks_settings(),
        **moderation.tasks_settings(),  # the market's moderation: Tencent TMS + IMS
    )
    settings = gateway_settings(
        str(tmp_path / "data"),
        database_url,
        MARKET="cn",
        SMS_PROVIDER="console",  # SMS log-in is test_wechatpay.py's subject
        GATEWAY_PUBLIC_URL=url,
        BILLING_ADDRESS=billing.address,
        TASKS_ADDRESS=f"127.0.0.1:{tasks.port}",
        ATELIER_INTERNAL_TOKEN=billing.internal_token,
    )
    gateway = start_gateway(settings, sock=sock)
    api = Api(gateway.url)
    try:
        yield CnTasksStack(gateway, billing, tasks, api, cos, moderation)
    finally:
        api.close()
        gateway.stop()
        tasks.stop()
        billing.stop()
        cos.close()
        moderation.close()


def garment_photo() -> bytes:
    photo = Image.new("RGB", (300, 180), (235, 235, 230))
    photo.paste((30, 60, 160), (90, 30, 210, 150))  # a blue shirt on a grey floor
    out = io.BytesIO()
    photo.save(out, "JPEG")
    return out.getvalue()


def upload(user: User, data: bytes, content_type: str = "image/jpeg") -> dict[str, Any]:
    r = user.post("/v1/uploads", json={"content_type": content_type, "size": len(data)})
    assert r.status_code == 201, r.text
    target: dict[str, Any] = r.json()
    return target


def test_basic_clean_on_a_photo_put_straight_into_cos(cn_stack: CnTasksStack) -> None:
    started = time.monotonic()
    stack, cos = cn_stack, cn_stack.cos
    user = stack.api.user("mei@example.com")
    assert user.get("/v1/me/balance").json()["available"] == 10
    photo = garment_photo()

    target = upload(user, photo)
    assert (target["method"], target["fields"]) == ("PUT", None)
    assert target["url"].startswith(f"{cos.url}/{user.id}/uploads/")
    assert "q-signature=" in target["url"]
    assert target["headers"] == {"Content-Type": "image/jpeg"}
    credentials = target["credentials"]
    assert credentials is not None
    assert (credentials["bucket"], credentials["region"]) == (cos.bucket, cos.region)
    assert credentials["prefix"] == f"{user.id}/uploads/"
    assert credentials["tmp_secret_id"] != cos_server.SECRET_ID
    assert credentials["expires_at"].endswith("Z")

    sent = httpx.put(target["url"], content=photo, headers=target["headers"])
    assert sent.status_code == 200, sent.text
    assert cos.objects[target["upload_id"]].data == photo

    r = user.post(
        "/v1/tasks",
        json={"type": "basic_clean", "params": {}, "input_upload_id": target["upload_id"]},
    )
    assert r.status_code == 201, r.text
    task = r.json()
    assert task["cost"] == 1
    wait_until(
        lambda: user.get(f"/v1/tasks/{task['id']}").json()["status"] in ("succeeded", "failed"),
        what="basic_clean to finish",
    )
    done = user.get(f"/v1/tasks/{task['id']}").json()
    assert done["status"] == "succeeded", done
    (image,) = done["images"]
    assert (image["width"], image["height"], image["content_type"]) == (1024, 1024, "image/jpeg")
    assert image["url"].startswith(f"{cos.url}/{user.id}/tasks/{task['id']}/")
    for url in (image["url"], image["thumbnail_url"]):
        assert "q-signature=" in url  # signed, short-lived COS URLs
        got = httpx.get(url)
        assert got.status_code == 200
        Image.open(io.BytesIO(got.content)).verify()
    cleaned = Image.open(io.BytesIO(httpx.get(image["url"]).content)).convert("RGB")
    assert cleaned.getpixel((2, 2)) == (255, 255, 255)  # padded to a square on white
    unsigned = image["url"].split("?", 1)[0]
    assert httpx.get(unsigned).status_code == 403
    assert len(cos.processed) == 1  # one Cloud Infinite call
    # Tencent IMS saw the photo before Cloud Infinite did, and the result before it was stored
    assert [c.outcome for c in stack.moderation.calls_to("ims")] == ["Pass", "Pass"]
    assert not [k for k in cos.objects if "/ci/" in k], "Cloud Infinite's work objects are gone"

    wait_until(lambda: user.get("/v1/me/balance").json()["held"] == 0, what="the capture")
    assert user.get("/v1/me/balance").json()["available"] == 9
    print(
        f"cn basic_clean over HTTP (upload → Cloud Infinite → signed URL): "
        f"{time.monotonic() - started:.2f} s"
    )


def test_sts_keys_from_the_api_cannot_write_outside_the_users_prefix(
    cn_stack: CnTasksStack,
) -> None:
    stack, cos = cn_stack, cn_stack.cos
    user = stack.api.user("lin@example.com")
    other = stack.api.user("wu@example.com")
    photo = garment_photo()
    target = upload(user, photo)
    c = target["credentials"]
    browser = CosS3Client(
        CosConfig(
            Region=c["region"],
            SecretId=c["tmp_secret_id"],
            SecretKey=c["tmp_secret_key"],
            Token=c["session_token"],
            Scheme="http",
            Domain=cos.url.split("://", 1)[1],
        ),
        retry=0,
    )
    browser.put_object(Bucket=c["bucket"], Key=target["key"], Body=photo, ContentType="image/jpeg")
    assert cos.objects[target["key"]].data == photo
    outside = [
        f"{other.id}/uploads/up_x/photo.jpg",  # another user's uploads
        f"{user.id}/tasks/task_x/a1-00.jpg",  # the user's own results
        "index.html",
    ]
    for key in outside:
        with pytest.raises(CosServiceError) as caught:
            browser.put_object(Bucket=c["bucket"], Key=key, Body=photo, ContentType="image/jpeg")
        assert caught.value.get_status_code() == 403, key
        assert key not in cos.objects
    with pytest.raises(CosServiceError):  # read access was not granted either
        browser.get_object(Bucket=c["bucket"], Key=target["key"])

    # a task on an upload that is not an image in a supported type is refused, nothing charged
    r = user.post(
        "/v1/tasks",
        json={
            "type": "basic_clean",
            "params": {},
            "input_upload_id": f"{user.id}/uploads/none.jpg",
        },
    )
    assert r.status_code in (400, 422), r.text
    assert user.get("/v1/me/balance").json()["available"] == 10

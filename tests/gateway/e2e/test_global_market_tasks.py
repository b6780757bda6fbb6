"""MARKET=global through the public HTTP API: the gateway, the real billing service wired to the
local Stripe server, and the tasks service (its worker running) wired to the local Replicate
server and moto's S3. Stripe's and Replicate's webhooks arrive at the gateway's
``/webhooks/stripe`` and ``/webhooks/replicate`` like they would in production."""

from __future__ import annotations

import base64
import io
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.gateway.conftest import Api, User
from tests.gateway.harness import (
    RunningGateway,
    gateway_settings,
    reserve_socket,
    start_gateway,
    start_tasks_server,
)
from tests.support.aws_moderation_server import FakeAwsModeration
from tests.support.billing_server import RunningBilling, start_billing_server
from tests.support.moto_s3 import ACCESS_KEY, SECRET_KEY, MotoS3, moto_s3
from tests.support.replicate_server import API_TOKEN, WEBHOOK_SECRET, FakeReplicate
from tests.support.stripe_server import API_KEY as STRIPE_KEY
from tests.support.stripe_server import WEBHOOK_SECRET as STRIPE_WEBHOOK_SECRET
from tests.support.stripe_server import FakeStripe
from tests.tasks.conftest import wait_until


@dataclass
class GlobalStack:
    gateway: RunningGateway
    billing: RunningBilling
    tasks: Any
    api: Api
    replicate: FakeReplicate
    moto: MotoS3
    bucket: str
    stripe: FakeStripe
    aws: FakeAwsModeration


@pytest.fixture
def global_stack(
    database_url: str, billing_database_url: str, tasks_database_url: str, tmp_path: Path
) -> Iterator[GlobalStack]:
    sock = reserve_socket()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    replicate = FakeReplicate()
    stripe = FakeStripe(webhook_url=f"{url}/webhooks/stripe")
    moto = moto_s3()
    bucket = moto.new_bucket()
    aws = FakeAwsModeration()
    billing = start_billing_server(
        billing_database_url,
        GATEWAY_PUBLIC_URL=url,
        ATELIER_DATA_DIR=str(tmp_path / "b"),
        MARKET="global",
        STRIPE_API_KEY=STRIPE_KEY,
        STRIPE_WEBHOOK_SECRET=STRIPE_WEBHOOK_SECRET,
        STRIPE_API_BASE=stripe.url,
    )
    tasks = start_tasks_server(
        tasks_database_url,
        MARKET="global",
        ATELIER_DATA_DIR=str(tmp_path / "data"),
        ATELIER_INTERNAL_TOKEN=billing.internal_token,
        BILLING_ADDRESS=billing.address,
        GATEWAY_PUBLIC_URL=url,
        TASKS_WORKER_IDLE_SECONDS=0.05,
        REPLICATE_API_TOKEN=API_TOKEN,
        REPLICATE_WEBHOOK_SECRET=WEBHOOK_SECRET,
        REPLICATE_API_BASE=replicate.url,
        REPLICATE_OUTPUT_TRUSTED_ORIGINS=replicate.url,
        S3_BUCKET=bucket,
        S3_ENDPOINT_URL=moto.endpoint_url,
        S3_ACCESS_KEY_ID=ACCESS_KEY,
        S3_SECRET_ACCESS_KEY=SECRET_KEY,
        S3_ADDRESSING_STYLE="path",
        **aws.tasks_settings(),  # the market's moderation: Rekognition + Comprehend
    )
    settings = gateway_settings(
        str(tmp_path / "data"),
        database_url,
        GATEWAY_PUBLIC_URL=url,
        BILLING_ADDRESS=billing.address,
        TASKS_ADDRESS=f"127.0.0.1:{tasks.port}",
        ATELIER_INTERNAL_TOKEN=billing.internal_token,
    )
    gateway = start_gateway(settings, sock=sock)
    api = Api(gateway.url)
    try:
        yield GlobalStack(gateway, billing, tasks, api, replicate, moto, bucket, stripe, aws)
    finally:
        api.close()
        gateway.stop()
        tasks.stop()
        billing.stop()
        replicate.close()
        stripe.close()
        aws.close()


def succeeded(user: User, task_id: str) -> dict[str, Any]:
    """The task once GET shows it succeeded. The webhook was answered after the tasks service
    committed; GET reads the gateway's copy, which the tasks change feed refreshes a moment
    later (the read model's rule: never older than what the feed delivered)."""
    wait_until(
        lambda: user.get(f"/v1/tasks/{task_id}").json()["status"] != "processing",
        what="the read model to hear of the webhook's result",
    )
    done = dict(user.get(f"/v1/tasks/{task_id}").json())
    assert done["status"] == "succeeded", done
    return done


def balance(user: User) -> dict[str, Any]:
    return dict(user.get("/v1/me/balance").json())


def started_prediction(stack: GlobalStack, user: User) -> tuple[str, str]:
    r = user.post("/v1/tasks", json={"type": "text_to_image", "params": {"prompt": "a fox"}})
    assert r.status_code == 201, r.text
    task_id = str(r.json()["id"])
    wait_until(lambda: len(stack.replicate.predictions) == 1, what="the prediction")
    wait_until(
        lambda: user.get(f"/v1/tasks/{task_id}").json()["status"] == "processing",
        what="the task to be processing",
    )
    return task_id, next(iter(stack.replicate.predictions))


def test_text_to_image_via_replicate_webhook_to_the_gateway(global_stack: GlobalStack) -> None:
    stack = global_stack
    user = stack.api.user("gina@example.com")
    task_id, prediction_id = started_prediction(stack, user)
    assert balance(user)["held"] == 1

    stack.replicate.complete(prediction_id)
    assert stack.replicate.webhook_statuses == [200]
    done = succeeded(user, task_id)
    image = done["images"][0]
    assert image["url"].startswith(f"{stack.moto.endpoint_url}/{stack.bucket}/{user.id}/")
    assert stack.replicate.url not in str(done)  # vendor URLs are never handed out
    for url in (image["url"], image["thumbnail_url"]):
        got = httpx.get(url)
        assert got.status_code == 200
        Image.open(io.BytesIO(got.content)).verify()
    wait_until(lambda: balance(user)["held"] == 0, what="the capture")
    assert balance(user)["available"] == 9
    # the prompt went through Comprehend, the result through Rekognition before it was stored
    assert len(stack.aws.calls_to("Comprehend_20171127.DetectToxicContent")) == 1
    assert len(stack.aws.calls_to("RekognitionService.DetectModerationLabels")) == 1


def test_forged_and_stale_replicate_webhooks_are_400(global_stack: GlobalStack) -> None:
    stack = global_stack
    user = stack.api.user("hal@example.com")
    task_id, prediction_id = started_prediction(stack, user)
    stack.replicate.complete(prediction_id, webhook=False)
    wrong = "whsec_" + base64.b64encode(b"someone-else").decode()
    assert stack.replicate.send(prediction_id, secret=wrong) == 400
    assert stack.replicate.send(prediction_id, timestamp=int(time.time()) - 3600) == 400
    headers, body = stack.replicate.notification(prediction_id)
    r = stack.api.http.post("/webhooks/replicate", content=body, headers=headers)
    assert r.status_code == 200, r.text  # the genuine one, for contrast
    # The worker's own poll may be finishing the same prediction; either way it ends succeeded.
    wait_until(
        lambda: user.get(f"/v1/tasks/{task_id}").json()["status"] == "succeeded",
        what="the task to succeed",
    )


def test_browser_uploads_go_straight_to_s3(global_stack: GlobalStack) -> None:
    stack = global_stack
    user = stack.api.user("ivy@example.com")
    photo = io.BytesIO()
    Image.new("RGB", (32, 32), (10, 200, 30)).save(photo, "PNG")
    data = photo.getvalue()
    r = user.post("/v1/uploads", json={"content_type": "image/png", "size": len(data)})
    assert r.status_code == 201, r.text
    target = r.json()
    assert target["url"].startswith(f"{stack.moto.endpoint_url}/{stack.bucket}")
    assert target["upload_id"].startswith(f"{user.id}/")
    sent = httpx.post(
        target["url"], data=target["fields"], files={"file": ("p.png", data, "image/png")}
    )
    assert sent.status_code in (200, 201, 204), sent.text
    stored = stack.moto.client().get_object(Bucket=stack.bucket, Key=target["upload_id"])
    assert stored["Body"].read() == data


def test_packs_and_membership_through_stripe_checkout(global_stack: GlobalStack) -> None:
    stack = global_stack
    user = stack.api.user("jan@example.com")
    catalog = stack.api.http.get("/v1/catalog").json()
    assert (catalog["market"], catalog["channels"]) == ("global", ["stripe"])

    def checkout(item_id: str) -> tuple[str, dict[str, Any]]:
        r = user.post("/v1/orders", json={"item_id": item_id, "channel": "stripe"})
        assert r.status_code == 201, r.text
        order = r.json()
        assert order["checkout"]["url"].startswith(stack.stripe.url)
        session = next(
            s for s in stack.stripe.sessions.values() if s["client_reference_id"] == order["id"]
        )
        return order["id"], session

    pack_id, pack_session = checkout("pack_100")
    assert stack.stripe.send(stack.stripe.complete_session(pack_session["id"])) == 200
    assert user.get(f"/v1/orders/{pack_id}").json()["status"] == "paid"
    plan_id, plan_session = checkout("plan_monthly")
    completed = stack.stripe.complete_session(plan_session["id"])
    assert [stack.stripe.send(completed) for _ in range(2)] == [200, 200]  # redelivered: once
    assert balance(user)["available"] == 10 + 100 + 300
    assert balance(user)["membership"]["active"] is True
    assert user.get(f"/v1/orders/{plan_id}").json()["status"] == "paid"

    renewal = stack.stripe.renewal_invoice(plan_session["subscription"])
    assert [stack.stripe.send(renewal) for _ in range(2)] == [200, 200]
    assert balance(user)["available"] == 10 + 100 + 300 + 300

    refund = stack.stripe.refund(pack_session["id"])
    assert stack.stripe.send(refund) == 200
    assert user.get(f"/v1/orders/{pack_id}").json()["status"] == "refunded"
    assert balance(user)["available"] == 10 + 300 + 300
    kinds = [
        e["kind"] for e in user.get("/v1/me/ledger", params={"page_size": 100}).json()["items"]
    ]
    assert kinds == ["adjust", "grant", "grant", "grant", "grant"]

    forged = stack.stripe.renewal_invoice(plan_session["subscription"])
    assert stack.stripe.send(forged, secret="whsec_forged") == 400
    assert balance(user)["available"] == 10 + 300 + 300
    assert all(c.ok for c in stack.billing.app.use_cases.check_ledger())


def test_the_archive_streams_the_images_from_s3(global_stack: GlobalStack) -> None:
    stack = global_stack
    user = stack.api.user("zoe@example.com")
    task_id, prediction_id = started_prediction(stack, user)
    assert user.get(f"/v1/tasks/{task_id}/archive").status_code == 409  # still running
    stack.replicate.complete(prediction_id)
    done = succeeded(user, task_id)
    r = user.get(f"/v1/tasks/{task_id}/archive")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/zip"
    assert r.headers["content-disposition"].startswith("attachment;")
    with zipfile.ZipFile(io.BytesIO(r.content)) as z:
        contents = [z.read(info) for info in z.infolist()]
    assert contents == [httpx.get(i["url"]).content for i in done["images"]]
    other = stack.api.user("yan@example.com")
    assert other.get(f"/v1/tasks/{task_id}/archive").status_code == 404
    # storage that refuses the link: a clean 503 problem, not a broken zip
    stack.moto.client().delete_object(
        Bucket=stack.bucket,
        Key=done["images"][0]["url"].split(f"/{stack.bucket}/")[1].split("?")[0],
    )
    gone = user.get(f"/v1/tasks/{task_id}/archive")
    assert gone.status_code == 503
    assert gone.json()["code"] == "unavailable"

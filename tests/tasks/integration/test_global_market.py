"""MARKET=global end to end: the real billing service, the tasks service wired by configuration
alone (Replicate + S3) against the local Replicate server and moto, and a webhook endpoint that
forwards to HandleProviderNotification like the gateway does. On SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import hashlib
import json
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest

from atelier.tasks.v1 import tasks_pb2 as pb
from atelier_tasks.adapters.replicate_generation import ReplicateGenerationProvider
from atelier_tasks.adapters.s3_storage import S3ObjectStorage
from atelier_tasks.bootstrap import TasksContainer
from atelier_tasks.entrypoints.server import TasksServer, start_server
from tests.support.billing_server import RunningBilling, start_billing_server
from tests.support.fakes import FakeClock
from tests.support.moto_s3 import ACCESS_KEY, SECRET_KEY, MotoS3, moto_s3
from tests.support.replicate_server import API_TOKEN, WEBHOOK_SECRET, FakeReplicate
from tests.tasks.billing_rpc import error_reason
from tests.tasks.generation_webhook_relay import GenerationWebhookRelay
from tests.tasks.harness import MakeTasks
from tests.tasks.stack_calls import StackCalls


@dataclass
class GlobalStack(StackCalls):
    billing: RunningBilling
    tasks: TasksContainer
    server: TasksServer
    replicate: FakeReplicate
    relay: GenerationWebhookRelay
    moto: MotoS3
    bucket: str
    clock: FakeClock
    channel: grpc.Channel

    def dispatched(self, user: str) -> tuple[Any, str]:
        """Create a text_to_image task and let the worker hand it to Replicate."""
        params = json.dumps({"prompt": "a lighthouse at dusk", "seed": 42}).encode()
        request = pb.CreateTaskRequest(type=pb.TASK_TYPE_TEXT_TO_IMAGE, params_json=params)
        task = self.stub.CreateTask(request, metadata=self.md(user)).task
        self.run_worker()
        running = self.get(user, task.id)
        assert running.status == pb.TASK_STATUS_PROCESSING and running.provider == "replicate"
        (prediction_id,) = self.replicate.predictions
        return task, prediction_id

    def ledger_ok(self) -> bool:
        return all(check.ok for check in self.billing.app.use_cases.check_ledger())


@pytest.fixture
def stack(database_url: str, make_tasks: MakeTasks) -> Iterator[GlobalStack]:
    replicate = FakeReplicate()
    relay = GenerationWebhookRelay()
    moto = moto_s3()
    bucket = moto.new_bucket()
    billing = start_billing_server(database_url)
    clock = FakeClock.real()
    tasks = make_tasks(
        {
            "MARKET": "global",
            "MODERATION_PROVIDER": "local",  # AWS moderation: test_global_market_tasks.py
            "BILLING_ADDRESS": billing.address,
            "GATEWAY_PUBLIC_URL": relay.url,
            "REPLICATE_API_TOKEN": API_TOKEN,
            "REPLICATE_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "REPLICATE_API_BASE": replicate.url,
            "REPLICATE_OUTPUT_TRUSTED_ORIGINS": replicate.url,
            "S3_BUCKET": bucket,
            "S3_ENDPOINT_URL": moto.endpoint_url,
            "S3_ACCESS_KEY_ID": ACCESS_KEY,
            "S3_SECRET_ACCESS_KEY": SECRET_KEY,
            "S3_ADDRESSING_STYLE": "path",
        },
        clock=clock,
    )
    server = start_server(tasks, "127.0.0.1:0", run_worker=False)
    relay.attach(server.port, billing.internal_token)
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    try:
        yield GlobalStack(billing, tasks, server, replicate, relay, moto, bucket, clock, channel)
    finally:
        channel.close()
        server.grpc.stop()
        relay.close()
        billing.stop()
        replicate.close()


def test_market_global_wires_replicate_and_s3_by_configuration(stack: GlobalStack) -> None:
    app = stack.tasks
    assert isinstance(app.providers["replicate"], ReplicateGenerationProvider)
    assert isinstance(app.storage, S3ObjectStorage) and app.storage.bucket == stack.bucket
    assert set(stack.tasks.settings.routes().values()) == {"replicate"}


def test_text_to_image_through_replicate_lands_in_s3_and_captures(stack: GlobalStack) -> None:
    stack.set_up("alice")
    task, prediction_id = stack.dispatched("alice")
    assert stack.balance("alice") == (9, 1)
    _, path, body = stack.replicate.requests[0]
    assert path == "/v1/models/black-forest-labs/flux-schnell/predictions"
    assert body["webhook"] == f"{stack.relay.url}/webhooks/replicate"
    assert body["webhook_events_filter"] == ["completed"]

    stack.replicate.complete(prediction_id)
    assert stack.replicate.webhook_statuses == [200]
    done = stack.get("alice", task.id)
    assert done.status == pb.TASK_STATUS_SUCCEEDED
    image = done.images[0]
    vendor_bytes = stack.replicate.files[f"{prediction_id}-0.png"][0]
    # The result is ours: a short-lived presigned S3 URL under the owner's prefix, same bytes.
    assert image.url.startswith(f"{stack.moto.endpoint_url}/{stack.bucket}/alice/")
    assert "X-Amz-Signature=" in image.url and stack.replicate.url not in image.url
    with urllib.request.urlopen(image.url, timeout=10) as response:
        assert response.read() == vendor_bytes
    key = image.url.split(f"/{stack.bucket}/", 1)[1].split("?", 1)[0]
    head = stack.moto.client().head_object(Bucket=stack.bucket, Key=key)
    assert head["Metadata"]["sha256"] == image.sha256 == hashlib.sha256(vendor_bytes).hexdigest()
    assert image.size_bytes == len(vendor_bytes) and image.thumbnail_url
    assert stack.balance("alice") == (9, 0)

    # Replicate retries a webhook: the second delivery changes nothing.
    assert stack.replicate.send(prediction_id) == 200
    assert stack.balance("alice") == (9, 0)
    assert len(stack.get("alice", task.id).images) == 1
    assert stack.ledger_ok()


def test_forged_and_stale_signatures_change_nothing(stack: GlobalStack) -> None:
    stack.set_up("alice")
    task, prediction_id = stack.dispatched("alice")
    stack.replicate.complete(prediction_id, webhook=False)
    other_secret = "whsec_" + base64.b64encode(b"not-the-right-secret").decode()
    assert stack.replicate.send(prediction_id, secret=other_secret) == 400
    assert stack.replicate.send(prediction_id, timestamp=int(time.time()) - 600) == 400
    assert stack.relay.reasons == ["INVALID_SIGNATURE", "INVALID_SIGNATURE"]
    with pytest.raises(grpc.RpcError) as caught:
        stack.stub.HandleProviderNotification(
            pb.HandleProviderNotificationRequest(provider="replicate", body=b"{}"),
            metadata=stack.md(None),
        )
    assert error_reason(caught.value) == "INVALID_SIGNATURE"
    assert stack.get("alice", task.id).status == pb.TASK_STATUS_PROCESSING
    assert stack.balance("alice") == (9, 1)
    # The genuine delivery still works: the forgeries were refused, not merely ignored.
    assert stack.replicate.send(prediction_id) == 200
    assert stack.get("alice", task.id).status == pb.TASK_STATUS_SUCCEEDED


@pytest.mark.parametrize("where", ["loopback", "private"])
def test_output_on_an_internal_address_fails_the_task_and_releases(
    stack: GlobalStack, where: str
) -> None:
    stack.set_up("alice")
    task, prediction_id = stack.dispatched("alice")
    url = {
        "loopback": f"http://127.0.0.1:{stack.billing.port}/internal",
        "private": "http://192.168.1.10/admin.png",
    }[where]
    stack.replicate.complete(prediction_id, [url])
    assert stack.replicate.webhook_statuses == [200]
    failed = stack.get("alice", task.id)
    assert failed.status == pb.TASK_STATUS_FAILED and failed.error_reason == "PROVIDER_FAILED"
    assert "output URL refused" in failed.error_message
    assert "private, loopback or reserved address" in failed.error_message
    assert not failed.images
    assert stack.balance("alice") == (10, 0)
    assert stack.ledger_ok()


def test_lost_webhook_is_recovered_by_the_polling_sweep(stack: GlobalStack) -> None:
    stack.set_up("alice")
    task, prediction_id = stack.dispatched("alice")
    stack.replicate.complete(prediction_id, webhook=False)
    polls_before = _gets(stack, prediction_id)
    stack.run_worker()  # the sweep is not due yet: Replicate is not asked
    assert _gets(stack, prediction_id) == polls_before
    assert stack.get("alice", task.id).status == pb.TASK_STATUS_PROCESSING
    stack.clock.advance(minutes=3)
    stack.run_worker()
    done = stack.get("alice", task.id)
    assert done.status == pb.TASK_STATUS_SUCCEEDED and len(done.images) == 1
    assert _gets(stack, prediction_id) == polls_before + 1
    assert stack.balance("alice") == (9, 0)
    stack.clock.advance(minutes=30)
    stack.run_worker()  # terminal: never asked again
    assert _gets(stack, prediction_id) == polls_before + 1
    assert stack.ledger_ok()


def test_canceled_at_replicate_fails_and_releases(stack: GlobalStack) -> None:
    stack.set_up("alice")
    task, prediction_id = stack.dispatched("alice")
    stack.replicate.cancel_at_vendor(prediction_id)
    failed = stack.get("alice", task.id)
    assert failed.status == pb.TASK_STATUS_FAILED and "canceled" in failed.error_message
    assert stack.balance("alice") == (10, 0)


def _gets(stack: GlobalStack, prediction_id: str) -> int:
    path = f"/v1/predictions/{prediction_id}"
    return sum(1 for method, p, _ in stack.replicate.requests if (method, p) == ("GET", path))

"""What only the global-market adapters promise: the S3 upload policy, Replicate's request shape
and webhook window, and the SSRF rules of the output download."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import random
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from atelier_ports.clock import SystemClock
from atelier_ports.errors import InvalidNotification, ProviderRejected, ProviderUnavailable
from atelier_tasks.adapters.local_storage import LocalObjectStorage
from atelier_tasks.adapters.replicate_generation import ReplicateGenerationProvider
from atelier_tasks.adapters.s3_storage import S3ObjectStorage
from atelier_tasks.adapters.safe_fetch import OutputRefused, SafeOutputFetcher
from atelier_tasks.application.ports.generation import GenerationRequest, GenerationState
from atelier_tasks.bootstrap import build_providers, build_storage
from atelier_tasks.settings import TasksSettings
from tests.support.fakes import FakeClock
from tests.support.moto_s3 import ACCESS_KEY, SECRET_KEY, moto_s3
from tests.support.replicate_server import API_TOKEN, WEBHOOK_SECRET, FakeReplicate, png

# --- S3 ------------------------------------------------------------------------------------------


@pytest.fixture
def s3() -> S3ObjectStorage:
    moto = moto_s3()
    return S3ObjectStorage(
        bucket=moto.new_bucket(),
        clock=SystemClock(),
        endpoint_url=moto.endpoint_url,
        access_key_id=ACCESS_KEY,
        secret_access_key=SECRET_KEY,
        addressing_style="path",
        max_url_ttl_seconds=900,
    )


def policy_of(fields: dict[str, str]) -> dict[str, object]:
    decoded: dict[str, object] = json.loads(base64.b64decode(fields["policy"]))
    return decoded


def test_upload_policy_pins_prefix_key_size_and_type(s3: S3ObjectStorage) -> None:
    target = s3.upload_target("alice/uploads/up_1/photo.png", ("image/png",), 5_000_000, 600)
    policy = policy_of(dict(target.fields))
    conditions = policy["conditions"]
    assert isinstance(conditions, list)
    assert ["starts-with", "$key", "alice/"] in conditions
    assert {"key": "alice/uploads/up_1/photo.png"} in conditions
    assert {"bucket": s3.bucket} in conditions
    assert ["content-length-range", 1, 5_000_000] in conditions
    assert {"Content-Type": "image/png"} in conditions
    assert target.fields["Content-Type"] == "image/png"
    assert (
        target.fields["x-amz-algorithm"] == "AWS4-HMAC-SHA256" and target.fields["x-amz-signature"]
    )
    assert target.url.startswith(moto_s3().endpoint_url)
    assert (
        timedelta(seconds=590) < target.expires_at - SystemClock().now() <= timedelta(seconds=600)
    )


def test_upload_policy_with_several_types_stays_within_images(s3: S3ObjectStorage) -> None:
    target = s3.upload_target("bob/uploads/u/p.jpg", ("image/png", "image/jpeg"), 100, 60)
    conditions = policy_of(dict(target.fields))["conditions"]
    assert isinstance(conditions, list)
    assert ["starts-with", "$Content-Type", "image/"] in conditions
    assert ["starts-with", "$key", "bob/"] in conditions
    with pytest.raises(ValueError):
        s3.upload_target("bob/uploads/u/p.html", ("text/html",), 100, 60)


def test_presigned_get_is_short_lived_and_checksums_are_stored(s3: S3ObjectStorage) -> None:
    stored = s3.put("carol/tasks/t1/a1-00.png", b"bytes", "image/png")
    url = s3.signed_url(stored.key, 86_400)
    assert "X-Amz-Expires=900" in url  # capped
    # (ChecksumSHA256 is sent too, but moto does not report it back; the metadata is checked.)
    raw = moto_s3().client().head_object(Bucket=s3.bucket, Key=stored.key)
    assert raw["Metadata"]["sha256"] == stored.sha256 == hashlib.sha256(b"bytes").hexdigest()


def test_keys_outside_a_user_prefix_are_refused(s3: S3ObjectStorage) -> None:
    for key in ("no-prefix.png", "alice/../bob/x.png", "/alice/x.png"):
        with pytest.raises(ValueError):
            s3.put(key, b"x", "image/png")


def test_unreachable_s3_is_provider_unavailable() -> None:
    dead = S3ObjectStorage(
        bucket="b",
        clock=SystemClock(),
        endpoint_url="http://127.0.0.1:9",
        access_key_id="x",
        secret_access_key="y",
    )
    with pytest.raises(ProviderUnavailable):
        dead.put("u/x.png", b"x", "image/png")


# --- Replicate ---------------------------------------------------------------------------------


@pytest.fixture
def fake() -> Iterator[FakeReplicate]:
    server = FakeReplicate()
    yield server
    server.close()


def replicate(
    fake: FakeReplicate, clock: FakeClock | None = None, **models: str
) -> ReplicateGenerationProvider:
    return ReplicateGenerationProvider(
        api_token=API_TOKEN,
        webhook_secret=WEBHOOK_SECRET,
        webhook_url="https://api.atelier.test/webhooks/replicate",
        models=models or {"text_to_image": "black-forest-labs/flux-schnell"},
        fetcher=SafeOutputFetcher(["replicate.delivery"], trusted_origins=[fake.url]),
        clock=clock or FakeClock.real(),
        base_url=fake.url,
    )


def t2i(**params: object) -> GenerationRequest:
    return GenerationRequest(
        "task_1", "u1", "text_to_image", {"prompt": "owl", "seed": 7, **params}
    )


def test_predictions_carry_our_webhook_and_the_configured_model(fake: FakeReplicate) -> None:
    provider = replicate(fake)
    result = provider.submit(t2i())
    assert result.state is GenerationState.RUNNING and result.provider_job_id
    method, path, body = fake.requests[-1]
    assert (method, path) == ("POST", "/v1/models/black-forest-labs/flux-schnell/predictions")
    assert body["webhook"] == "https://api.atelier.test/webhooks/replicate"
    assert body["webhook_events_filter"] == ["completed"]
    assert body["input"] == {"prompt": "owl", "seed": 7}

    pinned = replicate(fake, text_to_image="acme/painter:abc123")
    pinned.submit(t2i())
    method, path, body = fake.requests[-1]
    assert (path, body["version"]) == ("/v1/predictions", "abc123")


def test_a_wrong_token_is_rejected_not_retried(fake: FakeReplicate) -> None:
    fake.token = "r8_other"
    with pytest.raises(ProviderRejected, match="401"):
        replicate(fake).submit(t2i())


def test_stale_and_future_webhooks_are_refused(fake: FakeReplicate) -> None:
    clock = FakeClock.real()
    provider = replicate(fake, clock)
    job = provider.submit(t2i()).provider_job_id
    assert job
    now = int(time.time())
    for ts in (now - 301, now + 301):
        headers, body = fake.notification(job, timestamp=ts)
        with pytest.raises(InvalidNotification, match="tolerance"):
            provider.parse_notification(headers, body)
    headers, body = fake.notification(job, timestamp=now - 200)
    assert provider.parse_notification(headers, body).provider_job_id == job


def test_canceled_prediction_fails_with_a_reason(fake: FakeReplicate) -> None:
    provider = replicate(fake)
    job = provider.submit(t2i()).provider_job_id
    assert job
    fake.cancel_at_vendor(job)
    headers, body = fake.notification(job)
    result = provider.parse_notification(headers, body).result
    assert result.state is GenerationState.FAILED and "canceled" in (result.error or "")


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://127.0.0.1:{port}/files/x.png", "private, loopback"),
        ("http://10.1.2.3/out.png", "private, loopback"),
        ("http://169.254.169.254/latest/meta-data/", "private, loopback"),
        ("http://[::1]:8080/x.png", "private, loopback"),
        ("https://evil.example.com/x.png", "not on the allow-list"),
        ("file:///etc/passwd", "not an http(s) URL"),
    ],
)
def test_output_urls_to_internal_or_unknown_hosts_are_refused(
    fake: FakeReplicate, url: str, why: str
) -> None:
    provider = replicate(fake)
    job = provider.submit(t2i()).provider_job_id
    assert job
    fake.add_file("x.png", png())
    other_port = fake.url.rsplit(":", 1)[1]
    fake.complete(job, [url.format(port=int(other_port) + 1)], webhook=False)
    result = provider.poll(job)
    assert result.state is GenerationState.FAILED and not result.transient
    assert "refused" in (result.error or "") and why in (result.error or "")


def test_allow_listed_host_resolving_to_a_private_address_is_refused() -> None:
    fetcher = SafeOutputFetcher(["*.replicate.delivery"], resolver=lambda host, port: ["10.0.0.7"])
    with pytest.raises(OutputRefused, match=r"resolves to a private.*10\.0\.0\.7"):
        fetcher.fetch("https://pbxt.replicate.delivery/abc/out.png")
    with pytest.raises(OutputRefused, match="allow-list"):
        fetcher.check_url("https://replicate.delivery.evil.com/x.png")
    public = SafeOutputFetcher(["*.replicate.delivery"], resolver=lambda h, p: ["34.1.2.3"])
    public.check_url("https://pbxt.replicate.delivery/abc/out.png")  # allowed


def test_outputs_too_large_or_not_images_are_refused(fake: FakeReplicate) -> None:
    small = SafeOutputFetcher([], max_bytes=1000, trusted_origins=[fake.url])
    big = fake.add_file("big.png", png(side=400))
    assert len(fake.files["big.png"][0]) > 1000
    with pytest.raises(OutputRefused, match="larger than"):
        small.fetch(big)
    html = fake.add_file("page.html", b"<script>", "text/html")
    with pytest.raises(OutputRefused, match="content type"):
        small.fetch(html)
    data, kind = small.fetch(fake.add_file("ok.png", png(side=4)))
    assert kind == "image/png" and data.startswith(b"\x89PNG")


# --- wiring ------------------------------------------------------------------------------------


def global_settings(**env: Any) -> TasksSettings:
    values: dict[str, Any] = {
        "MARKET": "global",
        "MODERATION_PROVIDER": "local",  # AWS moderation: test_global_market_tasks.py
        "REPLICATE_API_TOKEN": API_TOKEN,
        "REPLICATE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "S3_BUCKET": "media",
        "S3_ENDPOINT_URL": "http://127.0.0.1:9",
        "GATEWAY_PUBLIC_URL": "https://api.atelier.test/",
    }
    values.update(env)
    return TasksSettings(**values)


def test_market_global_picks_replicate_and_s3() -> None:
    settings = global_settings()
    providers = build_providers(settings, SystemClock())
    assert isinstance(providers["replicate"], ReplicateGenerationProvider)
    assert isinstance(build_storage(settings, SystemClock()), S3ObjectStorage)


def test_each_port_can_still_be_overridden_on_its_own(tmp_path: Path) -> None:
    settings = global_settings(
        TASKS_STORAGE="local",
        TASKS_PROVIDER_TEXT_TO_IMAGE="local",
        TASKS_PROVIDER_BASIC_CLEAN="local",
        TASKS_PROVIDER_MODEL_POSE12="local",
        ATELIER_DATA_DIR=str(tmp_path),
    )
    assert set(build_providers(settings, SystemClock())) == {"local"}
    assert isinstance(build_storage(settings, SystemClock()), LocalObjectStorage)
    only_storage = global_settings(TASKS_STORAGE="local", ATELIER_DATA_DIR=str(tmp_path))
    assert "replicate" in build_providers(only_storage, SystemClock())


def test_market_global_without_credentials_fails_fast() -> None:
    with pytest.raises(ValueError, match="REPLICATE_API_TOKEN"):
        build_providers(global_settings(REPLICATE_API_TOKEN=""), SystemClock())
    with pytest.raises(ValueError, match="S3_BUCKET"):
        build_storage(global_settings(S3_BUCKET=""), SystemClock())


def test_the_local_replicate_server_speaks_both_auth_schemes(fake: FakeReplicate) -> None:
    url = f"{fake.url}/v1/predictions/nope"
    assert httpx.get(url, headers={"Authorization": f"Token {API_TOKEN}"}).status_code == 404
    assert httpx.get(url, headers={"Authorization": f"Bearer {API_TOKEN}"}).status_code == 404
    refused = httpx.get(url, headers={"Authorization": "Bearer r8_wrong"})
    assert refused.status_code == 401 and refused.json()["status"] == 401


def test_inputs_travel_inline_when_small_and_by_signed_url_when_large(
    fake: FakeReplicate,
) -> None:
    signed: list[str] = []

    def input_url(key: str) -> str:
        signed.append(key)
        return f"https://media.example.com/{key}?X-Amz-Signature=abc"

    provider = ReplicateGenerationProvider(
        api_token=API_TOKEN,
        webhook_secret=WEBHOOK_SECRET,
        webhook_url="https://api.atelier.test/webhooks/replicate",
        models={"basic_clean": "acme/cleaner"},
        fetcher=SafeOutputFetcher([]),
        clock=FakeClock.real(),
        base_url=fake.url,
        input_url=input_url,
        inline_input_max_bytes=1000,
    )
    noisy = io.BytesIO()
    Image.frombytes("RGB", (40, 40), random.Random(1).randbytes(4800)).save(noisy, "PNG")
    small, large = png(side=4), noisy.getvalue()
    assert len(small) <= 1000 < len(large)
    for data in (small, large):
        provider.submit(
            GenerationRequest(
                "task_2", "u1", "basic_clean", {"size": 512}, ("u1/uploads/a.png",), (data,)
            )
        )
    inline, linked = (body["input"] for _, _, body in fake.requests[-2:])
    assert inline["image"] == "data:image/png;base64," + base64.b64encode(small).decode()
    assert linked["image"] == "https://media.example.com/u1/uploads/a.png?X-Amz-Signature=abc"
    assert signed == ["u1/uploads/a.png"] and linked["size"] == 512

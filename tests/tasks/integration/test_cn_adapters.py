"""The cn market's storage and Cloud Infinite adapters against the local COS server, which checks
every q-sign signature and enforces the policy of the STS keys it issued. The adapters drive the
real ``cos-python-sdk-v5`` and ``qcloud-python-sts``; the "browser" uses the COS SDK too, with
the temporary keys from ``upload_target`` (what the COS JavaScript SDK does)."""

from __future__ import annotations

import io
import json
import socket
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from PIL import Image
from qcloud_cos import CosConfig, CosS3Client, CosServiceError

from atelier_ports.clock import SystemClock
from atelier_ports.errors import ProviderRejected, ProviderUnavailable
from atelier_tasks.adapters.cos_storage import CosObjectStorage
from atelier_tasks.adapters.tencent_ci_generation import TencentCiGenerationProvider
from atelier_tasks.application.ports.generation import GenerationRequest, GenerationState
from atelier_tasks.application.ports.storage import ObjectNotFound, UploadTarget
from tests.support import cos_server
from tests.support.cos_server import FakeCos


@pytest.fixture
def cos() -> Iterator[FakeCos]:
    with FakeCos() as server:
        yield server


@pytest.fixture
def storage(cos: FakeCos) -> CosObjectStorage:
    return CosObjectStorage(
        bucket=cos.bucket,
        region=cos.region,
        secret_id=cos_server.SECRET_ID,
        secret_key=cos_server.SECRET_KEY,
        clock=SystemClock(),
        endpoint=cos.url,
        sts_endpoint=cos.sts_url,
    )


def png(size: tuple[int, int] = (40, 20), color: Any = (10, 120, 200), mode: str = "RGB") -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, color).save(out, "PNG")
    return out.getvalue()


def browser_client(cos: FakeCos, target: UploadTarget) -> Any:
    """The COS SDK as the browser's COS JavaScript SDK uses it: the temporary keys only."""
    c = target.credentials
    assert c is not None
    return CosS3Client(
        CosConfig(
            Region=c.region,
            SecretId=c.secret_id,
            SecretKey=c.secret_key,
            Token=c.session_token,
            Scheme="http",
            Domain=cos.url.split("://", 1)[1],
        ),
        retry=0,
    )


def test_a_wrong_key_or_a_tampered_signature_is_refused(cos: FakeCos) -> None:
    storage = CosObjectStorage(
        bucket=cos.bucket,
        region=cos.region,
        secret_id=cos_server.SECRET_ID,
        secret_key="not-the-secret-key",
        clock=SystemClock(),
        endpoint=cos.url,
    )
    with pytest.raises(Exception, match="403 SignatureDoesNotMatch"):
        storage.put("user_1/a.png", png(), "image/png")
    assert cos.objects == {}


def test_signed_urls_cover_the_key_and_expire(cos: FakeCos, storage: CosObjectStorage) -> None:
    storage.put("user_1/tasks/t1/a.png", png(), "image/png")
    storage.put("user_1/tasks/t1/b.png", png((8, 8)), "image/png")
    url = storage.signed_url("user_1/tasks/t1/a.png", 60)
    assert httpx.get(url).status_code == 200
    other = url.replace("/a.png", "/b.png")
    assert httpx.get(other).status_code == 403  # the signature is for a.png only
    start, end = httpx.URL(url).params["q-sign-time"].split(";")
    expired = url.replace(f"{start}%3B{end}", f"{int(start) - 500}%3B{int(start) - 100}")
    assert expired != url and httpx.get(expired).status_code == 403


def test_copy_keeps_the_bytes_and_checksum(cos: FakeCos, storage: CosObjectStorage) -> None:
    stored = storage.put("user_1/tasks/t1/a.png", png(), "image/png")
    copied = storage.copy("user_1/tasks/t1/a.png", "user_1/tasks/t2/a.png")
    assert (copied.size, copied.sha256) == (stored.size, stored.sha256)
    assert storage.get("user_1/tasks/t2/a.png") == png()
    with pytest.raises(ObjectNotFound):
        storage.copy("user_1/nothing.png", "user_1/tasks/t3/a.png")


def test_a_tampered_object_fails_its_checksum(cos: FakeCos, storage: CosObjectStorage) -> None:
    storage.put("user_1/tasks/t1/a.png", png(), "image/png")
    cos.objects["user_1/tasks/t1/a.png"].data = png((9, 9))
    with pytest.raises(Exception, match="sha256"):
        storage.get("user_1/tasks/t1/a.png")


def test_presigned_put_is_for_its_key_and_content_type(
    cos: FakeCos, storage: CosObjectStorage
) -> None:
    target = storage.upload_target("user_1/uploads/up_1/photo.png", ("image/png",), 10_000, 600)
    assert (target.method, dict(target.headers)) == ("PUT", {"Content-Type": "image/png"})
    wrong_type = httpx.put(target.url, content=png(), headers={"Content-Type": "image/gif"})
    assert wrong_type.status_code == 403
    elsewhere = httpx.put(
        target.url.replace("up_1/photo.png", "up_1/other.png"),
        content=png(),
        headers=dict(target.headers),
    )
    assert elsewhere.status_code == 403
    ok = httpx.put(target.url, content=png(), headers=dict(target.headers))
    assert ok.status_code == 200, ok.text
    assert set(cos.objects) == {"user_1/uploads/up_1/photo.png"}


def test_sts_keys_put_only_under_the_users_upload_prefix(
    cos: FakeCos, storage: CosObjectStorage
) -> None:
    target = storage.upload_target("user_1/uploads/up_1/photo.png", ("image/png",), 10_000, 600)
    c = target.credentials
    assert c is not None
    assert (c.bucket, c.region, c.prefix) == (cos.bucket, cos.region, "user_1/uploads/")
    assert c.secret_id != cos_server.SECRET_ID and c.session_token
    now = SystemClock().now()
    assert now < c.expires_at <= now + timedelta(seconds=601)
    (policy,) = cos.sts_policies
    (statement,) = policy["statement"]
    assert statement["action"] == ["name/cos:PutObject", "name/cos:PostObject"]
    assert statement["resource"] == [
        f"qcs::cos:{cos.region}:uid/1250000000:{cos.bucket}/user_1/uploads/*"
    ]

    browser = browser_client(cos, target)
    browser.put_object(Bucket=c.bucket, Key=target.key, Body=png(), ContentType="image/png")
    assert cos.objects[target.key].data == png()
    refused = [
        # another user's prefix, this user's results, the bucket root
        dict(Key="user_2/uploads/up_9/photo.png", Body=png(), ContentType="image/png"),
        dict(Key="user_1/tasks/t1/a.png", Body=png(), ContentType="image/png"),
        dict(Key="photo.png", Body=png(), ContentType="image/png"),
        # the right prefix, but not the declared type, or over the size
        dict(Key="user_1/uploads/up_2/p.html", Body=b"<script>", ContentType="text/html"),
        dict(Key="user_1/uploads/up_3/big.png", Body=b"x" * 10_001, ContentType="image/png"),
    ]
    for put in refused:
        with pytest.raises(CosServiceError) as caught:
            browser.put_object(Bucket=c.bucket, **put)
        assert (caught.value.get_status_code(), caught.value.get_error_code()) == (
            403,
            "AccessDenied",
        ), put["Key"]
    for action in (browser.get_object, browser.delete_object):
        with pytest.raises(CosServiceError) as caught:
            action(Bucket=c.bucket, Key=target.key)
        assert caught.value.get_status_code() == 403
    assert set(cos.objects) == {target.key}


def test_sts_keys_without_their_token_are_refused(cos: FakeCos, storage: CosObjectStorage) -> None:
    target = storage.upload_target("user_1/uploads/up_1/photo.png", ("image/png",), 10_000, 600)
    c = target.credentials
    assert c is not None
    tokenless = CosS3Client(
        CosConfig(
            Region=c.region,
            SecretId=c.secret_id,
            SecretKey=c.secret_key,
            Scheme="http",
            Domain=cos.url.split("://", 1)[1],
        ),
        retry=0,
    )
    with pytest.raises(CosServiceError) as caught:
        tokenless.put_object(Bucket=c.bucket, Key=target.key, Body=png(), ContentType="image/png")
    assert caught.value.get_status_code() == 403
    assert cos.objects == {}


# --- Cloud Infinite ---------------------------------------------------------------------------


def ci(
    cos: FakeCos, secret_key: str = cos_server.SECRET_KEY, endpoint: str | None = None
) -> TencentCiGenerationProvider:
    return TencentCiGenerationProvider(
        bucket=cos.bucket,
        region=cos.region,
        secret_id=cos_server.SECRET_ID,
        secret_key=secret_key,
        endpoint=endpoint or cos.url,
        side=256,
        retries=0,
    )


def clean_request(key: str, photo: bytes) -> GenerationRequest:
    return GenerationRequest(
        task_id="task_1",
        user_id="user_1",
        task_type="basic_clean",
        params={},
        input_keys=(key,),
        inputs=(photo,),
    )


def test_basic_clean_processes_the_stored_input_in_place(
    cos: FakeCos, storage: CosObjectStorage
) -> None:
    """A transparent, sideways (EXIF orientation 6) photo: upright, square, on white."""
    photo = Image.new("RGBA", (120, 60), (0, 0, 0, 0))
    photo.paste((200, 0, 0, 255), (0, 0, 60, 60))
    out = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    photo.save(out, "PNG", exif=exif)
    key = "user_1/uploads/up_1/photo.png"
    storage.put(key, out.getvalue(), "image/png")

    result = ci(cos).submit(clean_request(key, out.getvalue()))
    assert result.state is GenerationState.SUCCEEDED, result.error
    (output,) = result.outputs
    assert output.content_type == "image/jpeg"
    image = Image.open(io.BytesIO(output.data)).convert("RGB")
    assert image.size == (256, 256)

    def pixel(x: int, y: int) -> tuple[int, ...]:
        value = image.getpixel((x, y))
        assert isinstance(value, tuple)
        return value

    assert pixel(5, 5) == (255, 255, 255)  # white background
    # 60×120 upright (not enlarged), centred: the red half is now on top, the transparent one white
    r, g, b = pixel(128, 100)
    assert r > 180 and g < 60 and b < 60
    assert min(pixel(128, 160)) > 240
    assert cos.processed == [ci(cos).rule]
    assert set(cos.objects) == {key}, "the processed object is read back and removed"


def test_basic_clean_uploads_an_input_kept_elsewhere(cos: FakeCos) -> None:
    result = ci(cos).submit(clean_request("user_1/uploads/up_1/photo.png", png((30, 90))))
    assert result.state is GenerationState.SUCCEEDED
    assert Image.open(io.BytesIO(result.outputs[0].data)).size == (256, 256)
    assert cos.objects == {}, "the work copy and the result are removed"


def test_basic_clean_maps_vendor_errors(cos: FakeCos) -> None:
    failed = ci(cos).submit(clean_request("user_1/uploads/up_1/photo.png", b"not an image"))
    assert failed.state is GenerationState.FAILED and not failed.transient
    assert failed.error and "InvalidImageFormat" in failed.error
    with pytest.raises(ProviderRejected, match="COS_SECRET_ID"):
        ci(cos, secret_key="wrong").submit(clean_request("user_1/uploads/up_1/a.png", png()))
    with pytest.raises(ProviderRejected):
        ci(cos).submit(
            clean_request("user_1/uploads/up_1/a.png", png()).__class__(
                task_id="t", user_id="user_1", task_type="text_to_image", params={"prompt": "x"}
            )
        )
    assert json.loads(json.dumps(cos.refused))  # every refusal was recorded by the server


def test_basic_clean_trouble_at_tencent_is_worth_retrying(cos: FakeCos) -> None:
    request = clean_request("user_1/uploads/up_1/a.png", png())
    for status, code in ((503, "ServiceUnavailable"), (429, "SlowDown")):
        cos.faults.append((status, code))
        with pytest.raises(ProviderUnavailable, match=code):
            ci(cos).submit(request)
    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        nowhere = f"http://127.0.0.1:{closed.getsockname()[1]}"
    with pytest.raises(ProviderUnavailable, match="unreachable"):
        ci(cos, endpoint=nowhere).submit(request)
    assert ci(cos).submit(request).state is GenerationState.SUCCEEDED  # and then it works

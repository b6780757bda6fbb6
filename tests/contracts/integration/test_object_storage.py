"""The ObjectStorage contract: local files, S3 (moto's server) and Tencent COS (the local
signature-checking COS server) pass the same suite. A *driver* per adapter plays the browser:
following a download URL and posting an upload form (or PUTting to a presigned URL)."""

from __future__ import annotations

import hashlib
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qs, unquote, urlsplit

import httpx
import pytest

from atelier_ports.clock import SystemClock
from atelier_tasks.adapters.cos_storage import CosObjectStorage
from atelier_tasks.adapters.local_storage import LocalObjectStorage
from atelier_tasks.adapters.s3_storage import S3ObjectStorage
from atelier_tasks.application.ports.storage import ObjectNotFound, ObjectStorage, UploadTarget
from tests.support import cos_server
from tests.support.cos_server import FakeCos
from tests.support.moto_s3 import ACCESS_KEY, SECRET_KEY, moto_s3


class Driver(Protocol):
    @property
    def storage(self) -> ObjectStorage: ...  # the adapter under test, typed as its port

    def download(self, url: str) -> bytes: ...

    def upload(self, target: UploadTarget, data: bytes, content_type: str) -> None: ...


@dataclass
class LocalDriver:
    storage: LocalObjectStorage

    def download(self, url: str) -> bytes:
        """What the gateway's /files endpoint does with the URL."""
        parts = urlsplit(url)
        key = unquote(parts.path.split("/files/", 1)[1])
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        assert self.storage.verify_download(key, query["expires"], query["signature"])
        return self.storage.get(key)

    def upload(self, target: UploadTarget, data: bytes, content_type: str) -> None:
        self.storage.accept_upload(target.fields, data, content_type)


@dataclass
class S3Driver:
    storage: S3ObjectStorage

    def download(self, url: str) -> bytes:
        with urllib.request.urlopen(url, timeout=10) as response:
            return bytes(response.read())

    def upload(self, target: UploadTarget, data: bytes, content_type: str) -> None:
        # A browser form: every field, then the file last.
        response = httpx.post(
            target.url, data=dict(target.fields), files={"file": ("photo", data, content_type)}
        )
        assert response.status_code in (200, 201, 204), response.text


@dataclass
class CosDriver:
    storage: CosObjectStorage

    def download(self, url: str) -> bytes:
        with urllib.request.urlopen(url, timeout=10) as response:
            return bytes(response.read())

    def upload(self, target: UploadTarget, data: bytes, content_type: str) -> None:
        # A browser's fetch(url, {method: "PUT", headers, body}).
        response = httpx.put(target.url, content=data, headers=dict(target.headers))
        assert response.status_code == 200, response.text


@pytest.fixture(params=["local", "s3", "cos"])
def driver(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Driver]:
    clock = SystemClock()
    if request.param == "local":
        yield LocalDriver(LocalObjectStorage(tmp_path / "objects", b"contract-secret", clock))
        return
    if request.param == "cos":
        with FakeCos() as cos:
            yield CosDriver(
                CosObjectStorage(
                    bucket=cos.bucket,
                    region=cos.region,
                    secret_id=cos_server.SECRET_ID,
                    secret_key=cos_server.SECRET_KEY,
                    clock=clock,
                    endpoint=cos.url,
                    sts_endpoint=cos.sts_url,
                )
            )
        return
    moto = moto_s3()
    yield S3Driver(
        S3ObjectStorage(
            bucket=moto.new_bucket(),
            clock=clock,
            endpoint_url=moto.endpoint_url,
            access_key_id=ACCESS_KEY,
            secret_access_key=SECRET_KEY,
            addressing_style="path",
        )
    )


PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


def test_put_get_head_round_trip_with_sha256(driver: Driver) -> None:
    key = "user_1/tasks/task_1/a1-00.png"
    stored = driver.storage.put(key, PNG, "image/png")
    assert (stored.key, stored.size, stored.content_type) == (key, len(PNG), "image/png")
    assert stored.sha256 == hashlib.sha256(PNG).hexdigest()
    assert driver.storage.get(key) == PNG
    assert driver.storage.head(key) == stored


def test_missing_objects(driver: Driver) -> None:
    assert driver.storage.head("user_1/nothing.png") is None
    with pytest.raises(ObjectNotFound):
        driver.storage.get("user_1/nothing.png")
    driver.storage.delete("user_1/nothing.png")  # idempotent


def test_delete_removes_and_is_idempotent(driver: Driver) -> None:
    key = "user_1/tasks/task_2/a1-00.png"
    driver.storage.put(key, PNG, "image/png")
    driver.storage.delete(key)
    driver.storage.delete(key)
    assert driver.storage.head(key) is None
    with pytest.raises(ObjectNotFound):
        driver.storage.get(key)


def test_overwrite_replaces_bytes_and_checksum(driver: Driver) -> None:
    key = "user_1/tasks/task_3/a1-00.png"
    driver.storage.put(key, PNG, "image/png")
    stored = driver.storage.put(key, PNG[:100], "image/png")
    assert driver.storage.get(key) == PNG[:100]
    assert stored.sha256 == hashlib.sha256(PNG[:100]).hexdigest()


def test_signed_url_downloads_the_object_and_expires(driver: Driver) -> None:
    key = "user_1/tasks/task_4/a1-00.png"
    driver.storage.put(key, PNG, "image/png")
    url = driver.storage.signed_url(key, 300)
    assert driver.download(url) == PNG
    # Short-lived: the URL itself carries an expiry no later than asked for.
    query = parse_qs(urlsplit(url).query)
    if "X-Amz-Expires" in query:
        assert int(query["X-Amz-Expires"][0]) == 300
    elif "q-sign-time" in query:
        deadline = SystemClock().now() + timedelta(seconds=301)
        assert int(query["q-sign-time"][0].split(";")[1]) <= deadline.timestamp()
    else:
        deadline = SystemClock().now() + timedelta(seconds=301)
        assert int(query["expires"][0]) <= deadline.timestamp()


def test_browser_upload_lands_under_the_key(driver: Driver) -> None:
    key = "user_1/uploads/up_1/photo.png"
    target = driver.storage.upload_target(key, ("image/png",), 10_000, 600)
    assert target.key == key
    assert target.method == ("PUT" if isinstance(driver, CosDriver) else "POST")
    assert target.expires_at > SystemClock().now()
    driver.upload(target, PNG, "image/png")
    assert driver.storage.get(key) == PNG
    head = driver.storage.head(key)
    assert head is not None and head.size == len(PNG)

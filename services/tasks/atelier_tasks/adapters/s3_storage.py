"""Object storage on Amazon S3 (or any S3-compatible store via ``endpoint_url``), with boto3.

- Keys are ``{user_id}/…`` (results: ``{user_id}/tasks/{task_id}/…``, chosen by the application);
  every object is written with ``ChecksumSHA256`` (S3 verifies it on arrival) and the hex digest in
  its metadata (``x-amz-meta-sha256``), which ``head`` reports and ``get`` re-checks.
- Downloads are presigned GET URLs, capped at ``max_url_ttl_seconds``.
- Browser uploads are presigned POST forms whose policy pins the bucket and the exact key, restricts
  the key to the owner's prefix (``["starts-with", "$key", "{user_id}/"]``), the size
  (``content-length-range``) and the content type (image types only).

boto3/botocore errors are translated here: missing objects → ObjectNotFound / None, everything
else → ProviderUnavailable (the worker retries storing results).
"""

from __future__ import annotations

import base64
import hashlib
from datetime import timedelta
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from atelier_ports.clock import Clock
from atelier_ports.errors import ProviderUnavailable
from atelier_tasks.application.ports.storage import ObjectNotFound, StoredObject, UploadTarget

_MISSING = {"404", "NoSuchKey", "NotFound"}


class S3ObjectStorage:
    def __init__(
        self,
        *,
        bucket: str,
        clock: Clock,
        region: str = "us-east-1",
        endpoint_url: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        addressing_style: str = "auto",
        max_url_ttl_seconds: int = 3600,
    ) -> None:
        if not bucket:
            raise ValueError("S3 storage needs S3_BUCKET")
        self.bucket = bucket
        self._clock = clock
        self._max_ttl = max_url_ttl_seconds
        # Empty credentials fall through to boto3's chain (env, profile, instance role).
        self._client: Any = boto3.client(
            "s3",
            region_name=region,
            endpoint_url=endpoint_url or None,
            aws_access_key_id=access_key_id or None,
            aws_secret_access_key=secret_access_key or None,
            config=Config(
                signature_version="s3v4",
                s3={"addressing_style": addressing_style},
                retries={"max_attempts": 3, "mode": "standard"},
                connect_timeout=5,
                read_timeout=30,
            ),
        )

    @staticmethod
    def _check_key(key: str) -> None:
        parts = key.split("/")
        if len(parts) < 2 or any(p in ("", ".", "..") for p in parts):
            raise ValueError(f"invalid object key {key!r} (must be '{{user_id}}/…')")

    def put(self, key: str, data: bytes, content_type: str) -> StoredObject:
        self._check_key(key)
        digest = hashlib.sha256(data)
        try:
            self._client.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=data,
                ContentType=content_type,
                ChecksumSHA256=base64.b64encode(digest.digest()).decode(),
                Metadata={"sha256": digest.hexdigest()},
            )
        except (ClientError, BotoCoreError) as exc:
            raise ProviderUnavailable(f"S3 put {key!r} failed: {exc}") from exc
        return StoredObject(key, len(data), content_type, digest.hexdigest())

    def get(self, key: str) -> bytes:
        try:
            response = self._client.get_object(Bucket=self.bucket, Key=key)
            data: bytes = response["Body"].read()
        except ClientError as exc:
            if _code(exc) in _MISSING:
                raise ObjectNotFound(key) from None
            raise ProviderUnavailable(f"S3 get {key!r} failed: {exc}") from exc
        except BotoCoreError as exc:
            raise ProviderUnavailable(f"S3 get {key!r} failed: {exc}") from exc
        expected = (response.get("Metadata") or {}).get("sha256")
        if expected and hashlib.sha256(data).hexdigest() != expected:
            raise ProviderUnavailable(f"S3 object {key!r} does not match its sha256")
        return data

    def head(self, key: str) -> StoredObject | None:
        try:
            response = self._client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _code(exc) in _MISSING:
                return None
            raise ProviderUnavailable(f"S3 head {key!r} failed: {exc}") from exc
        except BotoCoreError as exc:
            raise ProviderUnavailable(f"S3 head {key!r} failed: {exc}") from exc
        return StoredObject(
            key=key,
            size=int(response["ContentLength"]),
            content_type=str(response.get("ContentType") or "application/octet-stream"),
            sha256=str((response.get("Metadata") or {}).get("sha256", "")),
        )

    def delete(self, key: str) -> None:
        try:
            self._client.delete_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _code(exc) not in _MISSING:
                raise ProviderUnavailable(f"S3 delete {key!r} failed: {exc}") from exc
        except BotoCoreError as exc:
            raise ProviderUnavailable(f"S3 delete {key!r} failed: {exc}") from exc

    def signed_url(self, key: str, expires_in_seconds: int) -> str:
        self._check_key(key)
        url: str = self._client.generate_presigned_url(
            "get_object",
            Params={"Bucket": self.bucket, "Key": key},
            ExpiresIn=max(1, min(expires_in_seconds, self._max_ttl)),
            HttpMethod="GET",
        )
        return url

    def upload_target(
        self, key: str, content_types: tuple[str, ...], max_size: int, expires_in_seconds: int
    ) -> UploadTarget:
        self._check_key(key)
        if not content_types or not all(t.startswith("image/") for t in content_types):
            raise ValueError("uploads accept image content types only")
        if max_size < 1:
            raise ValueError("max_size must be positive")
        prefix = key.split("/", 1)[0] + "/"
        fields: dict[str, str] = {}
        conditions: list[Any] = [
            ["starts-with", "$key", prefix],  # boto3 adds the exact {"key": key} itself
            ["content-length-range", 1, max_size],
        ]
        if len(content_types) == 1:
            fields["Content-Type"] = content_types[0]
            conditions.append({"Content-Type": content_types[0]})
        else:
            conditions.append(["starts-with", "$Content-Type", "image/"])
        ttl = max(1, min(expires_in_seconds, self._max_ttl))
        post = self._client.generate_presigned_post(
            Bucket=self.bucket, Key=key, Fields=fields, Conditions=conditions, ExpiresIn=ttl
        )
        return UploadTarget(
            key=key,
            method="POST",
            url=str(post["url"]),
            expires_at=self._clock.now() + timedelta(seconds=ttl),
            fields={str(k): str(v) for k, v in post["fields"].items()},
        )


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))

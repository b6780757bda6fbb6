"""Object storage on Tencent COS, with ``cos-python-sdk-v5``; browser uploads with a presigned PUT
plus STS temporary keys from ``qcloud-python-sts``.

- Keys are ``{user_id}/…`` like every store's; objects are written with the hex SHA-256 in their
  metadata (``x-cos-meta-sha256``), which ``head`` reports and ``get`` re-checks.
- Downloads are presigned GET URLs (q-sign in the query), capped at ``max_url_ttl_seconds``.
- Browser uploads (``upload_target``): a presigned ``PUT`` of the exact key whose signature covers
  the ``Content-Type`` (so the same browser code works as in every market), plus ``credentials``:
  temporary keys (``GetFederationToken``) allowed only ``PutObject``/``PostObject`` under the
  user's upload prefix (``{user_id}/uploads/*``), only for the declared content type and at most
  ``max_size`` bytes (COS policy conditions ``cos:content-type``, ``cos:content-length``), for the
  upload's short expiry. The size is checked again when a task uses the upload (CreateTask).
- ``endpoint`` (``COS_ENDPOINT``) replaces the bucket's default domain
  ``https://<bucket>.cos.<region>.myqcloud.com`` (a custom domain; local servers in tests);
  ``sts_endpoint`` (``COS_STS_ENDPOINT``) replaces ``https://sts.tencentcloudapi.com/`` (tests).

SDK errors are translated here: a missing object → ObjectNotFound / None; everything else →
ProviderUnavailable (the worker retries storing results); failing to issue STS keys too.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from qcloud_cos import CosClientError, CosConfig, CosS3Client, CosServiceError
from sts.sts import Sts

from atelier_ports.clock import Clock
from atelier_ports.errors import ProviderUnavailable
from atelier_tasks.application.ports.storage import (
    ObjectNotFound,
    StoredObject,
    UploadCredentials,
    UploadTarget,
)

_MISSING = {"NoSuchKey", "NoSuchResource"}
# The put actions a browser upload needs (simple upload: the COS JS SDK's putObject / postObject).
UPLOAD_ACTIONS = ("name/cos:PutObject", "name/cos:PostObject")
STS_MAX_SECONDS = 7200


def cos_config(
    *,
    region: str,
    secret_id: str,
    secret_key: str,
    endpoint: str = "",
    timeout_seconds: float = 30.0,
) -> Any:
    """The SDK's configuration; ``endpoint`` is the bucket's domain as a URL (scheme://host[:port])."""
    if endpoint:
        parts = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
        return CosConfig(
            Region=region,
            SecretId=secret_id,
            SecretKey=secret_key,
            Scheme=parts.scheme,
            Domain=parts.netloc,
            Timeout=timeout_seconds,
        )
    return CosConfig(
        Region=region,
        SecretId=secret_id,
        SecretKey=secret_key,
        Scheme="https",
        Timeout=timeout_seconds,
    )


class CosObjectStorage:
    def __init__(
        self,
        *,
        bucket: str,
        region: str,
        secret_id: str,
        secret_key: str,
        clock: Clock,
        endpoint: str = "",
        sts_endpoint: str = "",
        max_url_ttl_seconds: int = 3600,
        timeout_seconds: float = 30.0,
    ) -> None:
        if not (bucket and region and secret_id and secret_key):
            raise ValueError("COS storage needs COS_BUCKET, COS_REGION and the COS keys")
        self.bucket = bucket
        self.region = region
        self._secret_id = secret_id
        self._secret_key = secret_key
        self._clock = clock
        self._max_ttl = max_url_ttl_seconds
        self._sts_endpoint = sts_endpoint
        config = cos_config(
            region=region,
            secret_id=secret_id,
            secret_key=secret_key,
            endpoint=endpoint,
            timeout_seconds=timeout_seconds,
        )
        self._client: Any = CosS3Client(config, retry=2)

    @staticmethod
    def _check_key(key: str) -> None:
        parts = key.split("/")
        if len(parts) < 2 or any(p in ("", ".", "..") for p in parts):
            raise ValueError(f"invalid object key {key!r} (must be '{{user_id}}/…')")

    def put(self, key: str, data: bytes, content_type: str) -> StoredObject:
        self._check_key(key)
        digest = hashlib.sha256(data).hexdigest()
        try:
            self._client.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=data,
                ContentType=content_type,
                Metadata={"x-cos-meta-sha256": digest},
            )
        except (CosServiceError, CosClientError) as exc:
            raise ProviderUnavailable(f"COS put {key!r} failed: {_describe(exc)}") from exc
        return StoredObject(key, len(data), content_type, digest)

    def get(self, key: str) -> bytes:
        try:
            response = self._client.get_object(Bucket=self.bucket, Key=key)
            data: bytes = response["Body"].get_raw_stream().read()
        except CosServiceError as exc:
            if exc.get_error_code() in _MISSING or exc.get_status_code() == 404:
                raise ObjectNotFound(key) from None
            raise ProviderUnavailable(f"COS get {key!r} failed: {_describe(exc)}") from exc
        except CosClientError as exc:
            raise ProviderUnavailable(f"COS get {key!r} failed: {_describe(exc)}") from exc
        expected = _header(response, "x-cos-meta-sha256")
        if expected and hashlib.sha256(data).hexdigest() != expected:
            raise ProviderUnavailable(f"COS object {key!r} does not match its sha256")
        return data

    def head(self, key: str) -> StoredObject | None:
        try:
            response = self._client.head_object(Bucket=self.bucket, Key=key)
        except CosServiceError as exc:
            if exc.get_error_code() in _MISSING or exc.get_status_code() == 404:
                return None
            raise ProviderUnavailable(f"COS head {key!r} failed: {_describe(exc)}") from exc
        except CosClientError as exc:
            raise ProviderUnavailable(f"COS head {key!r} failed: {_describe(exc)}") from exc
        return StoredObject(
            key=key,
            size=int(_header(response, "Content-Length") or 0),
            content_type=_header(response, "Content-Type") or "application/octet-stream",
            sha256=_header(response, "x-cos-meta-sha256"),
        )

    def copy(self, source_key: str, key: str) -> StoredObject:
        """A server-side copy (metadata included); raises ObjectNotFound for a missing source."""
        self._check_key(key)
        source = {"Bucket": self.bucket, "Key": source_key, "Region": self.region}
        try:
            self._client.copy_object(Bucket=self.bucket, Key=key, CopySource=source)
        except CosServiceError as exc:
            if exc.get_error_code() in _MISSING or exc.get_status_code() == 404:
                raise ObjectNotFound(source_key) from None
            raise ProviderUnavailable(f"COS copy to {key!r} failed: {_describe(exc)}") from exc
        except CosClientError as exc:
            raise ProviderUnavailable(f"COS copy to {key!r} failed: {_describe(exc)}") from exc
        stored = self.head(key)
        if stored is None:
            raise ProviderUnavailable(f"COS copy to {key!r} is not there")
        return stored

    def delete(self, key: str) -> None:
        try:
            self._client.delete_object(Bucket=self.bucket, Key=key)
        except CosServiceError as exc:
            if exc.get_error_code() not in _MISSING and exc.get_status_code() != 404:
                raise ProviderUnavailable(f"COS delete {key!r} failed: {_describe(exc)}") from exc
        except CosClientError as exc:
            raise ProviderUnavailable(f"COS delete {key!r} failed: {_describe(exc)}") from exc

    def signed_url(self, key: str, expires_in_seconds: int) -> str:
        self._check_key(key)
        url: str = self._client.get_presigned_url(
            Bucket=self.bucket,
            Key=key,
            Method="GET",
            Expired=max(1, min(expires_in_seconds, self._max_ttl)),
        )
        return url

    def upload_target(
        self, key: str, content_types: tuple[str, ...], max_size: int, expires_in_seconds: int
    ) -> UploadTarget:
        self._check_key(key)
        if len(content_types) != 1 or not content_types[0].startswith("image/"):
            raise ValueError("a COS upload is of one image content type")
        if max_size < 1:
            raise ValueError("max_size must be positive")
        content_type = content_types[0]
        ttl = max(60, min(expires_in_seconds, self._max_ttl, STS_MAX_SECONDS))
        headers = {"Content-Type": content_type}
        url: str = self._client.get_presigned_url(
            Bucket=self.bucket, Key=key, Method="PUT", Expired=ttl, Headers=dict(headers)
        )
        prefix = f"{key.split('/', 1)[0]}/uploads/"
        return UploadTarget(
            key=key,
            method="PUT",
            url=url,
            expires_at=self._clock.now() + timedelta(seconds=ttl),
            headers=headers,
            credentials=self._credentials(prefix, content_type, max_size, ttl),
        )

    def upload_policy(self, prefix: str, content_type: str, max_size: int) -> dict[str, Any]:
        """What the temporary keys may do: put objects of this type and size under ``prefix``."""
        appid = self.bucket.rsplit("-", 1)[-1]
        resource = f"qcs::cos:{self.region}:uid/{appid}:{self.bucket}/{prefix}*"
        return {
            "version": "2.0",
            "statement": [
                {
                    "action": list(UPLOAD_ACTIONS),
                    "effect": "allow",
                    "resource": [resource],
                    "condition": {
                        "numeric_less_than_equal": {"cos:content-length": max_size},
                        "string_equal": {"cos:content-type": content_type},
                    },
                }
            ],
        }

    def _credentials(
        self, prefix: str, content_type: str, max_size: int, ttl: int
    ) -> UploadCredentials:
        config: dict[str, Any] = {
            "secret_id": self._secret_id,
            "secret_key": self._secret_key,
            "duration_seconds": int(ttl),
            "region": self.region,
            "policy": self.upload_policy(prefix, content_type, max_size),
        }
        if self._sts_endpoint:
            config["url"] = self._sts_endpoint
            config["domain"] = urlsplit(self._sts_endpoint).netloc
        try:
            issued = Sts(config).get_credential()
            credentials = issued["credentials"]
            expires_at = datetime.fromtimestamp(int(issued["expiredTime"]), tz=UTC)
            return UploadCredentials(
                secret_id=str(credentials["tmpSecretId"]),
                secret_key=str(credentials["tmpSecretKey"]),
                session_token=str(credentials["sessionToken"]),
                expires_at=expires_at,
                bucket=self.bucket,
                region=self.region,
                prefix=prefix,
            )
        except Exception as exc:  # the STS SDK raises a bare Exception for every failure
            raise ProviderUnavailable("COS STS could not issue upload keys") from exc


def _header(response: Any, name: str) -> str:
    lowered = name.lower()
    for key, value in dict(response).items():
        if str(key).lower() == lowered:
            return str(value)
    return ""


def _describe(exc: Exception) -> str:
    if isinstance(exc, CosServiceError):
        return f"{exc.get_status_code()} {exc.get_error_code()}"
    return type(exc).__name__

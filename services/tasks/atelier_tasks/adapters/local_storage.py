"""Object storage in local files, with HMAC-signed expiring URLs (served by the gateway).

The on-disk layout and the signing of download URLs and upload policies are
``atelier_common.local_objects``, which the gateway uses to serve and accept the same files.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path

from atelier_common.local_objects import (
    AccessDenied,
    InvalidKey,
    ObjectMetadata,
    ObjectSigner,
    delete_object,
    object_path,
    read_metadata,
    write_object,
)

from atelier_ports.clock import Clock
from atelier_tasks.application.ports.storage import ObjectNotFound, StoredObject, UploadTarget

__all__ = ["InvalidKey", "LocalObjectStorage"]


class LocalObjectStorage:
    def __init__(
        self,
        root: Path,
        secret: bytes,
        clock: Clock,
        base_url: str = "http://127.0.0.1:8080/files",
        upload_url: str = "http://127.0.0.1:8080/uploads",
    ) -> None:
        self.root = root
        self._signer = ObjectSigner(secret)
        self._clock = clock
        self.base_url = base_url.rstrip("/")
        self.upload_url = upload_url
        root.mkdir(parents=True, exist_ok=True)

    def put(self, key: str, data: bytes, content_type: str) -> StoredObject:
        return _stored(key, write_object(self.root, key, data, content_type))

    def get(self, key: str) -> bytes:
        try:
            return object_path(self.root, key).read_bytes()
        except (FileNotFoundError, IsADirectoryError, InvalidKey):
            raise ObjectNotFound(key) from None

    def head(self, key: str) -> StoredObject | None:
        try:
            metadata = read_metadata(self.root, key)
        except InvalidKey:
            return None
        return None if metadata is None else _stored(key, metadata)

    def delete(self, key: str) -> None:
        delete_object(self.root, key)

    # --- signing -------------------------------------------------------------------------------

    def signed_url(self, key: str, expires_in_seconds: int) -> str:
        object_path(self.root, key)
        expires = int((self._clock.now() + timedelta(seconds=expires_in_seconds)).timestamp())
        return self._signer.download_url(self.base_url, key, expires)

    def verify_download(self, key: str, expires: str, signature: str) -> bool:
        """What the file-serving endpoint checks: untampered and not expired."""
        try:
            self._signer.check_download(key, expires, signature, self._clock.now())
        except AccessDenied:
            return False
        return True

    def upload_target(
        self, key: str, content_types: tuple[str, ...], max_size: int, expires_in_seconds: int
    ) -> UploadTarget:
        object_path(self.root, key)
        expires_at = self._clock.now() + timedelta(seconds=expires_in_seconds)
        fields = self._signer.upload_fields(
            key, content_types, max_size, int(expires_at.timestamp())
        )
        return UploadTarget(
            key=key, method="POST", url=self.upload_url, expires_at=expires_at, fields=fields
        )

    def accept_upload(
        self, fields: Mapping[str, str], data: bytes, content_type: str
    ) -> StoredObject:
        """What the upload endpoint does with a browser's POST; raises PermissionError."""
        try:
            policy = self._signer.check_upload(fields, self._clock.now())
        except AccessDenied as e:
            raise PermissionError(f"upload policy is invalid or expired: {e}") from None
        if not policy.allows_content_type(content_type):
            raise PermissionError("content type not allowed")
        if not policy.allows_size(len(data)):
            raise PermissionError("file too large")
        return self.put(policy.key, data, content_type)


def _stored(key: str, metadata: ObjectMetadata) -> StoredObject:
    return StoredObject(
        key=key, size=metadata.size, content_type=metadata.content_type, sha256=metadata.sha256
    )

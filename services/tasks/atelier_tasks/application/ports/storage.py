"""The object storage port (local files, Amazon S3, Tencent COS).

Keys are always ``{user_id}/...`` so that signed upload
targets can be limited to the owner's prefix.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True, slots=True)
class StoredObject:
    key: str
    size: int
    content_type: str
    sha256: str


@dataclass(frozen=True, slots=True)
class UploadCredentials:
    """Temporary storage keys for a browser SDK upload (Tencent COS with STS): they may only put
    objects under ``prefix`` of ``bucket`` until ``expires_at``."""

    secret_id: str
    secret_key: str
    session_token: str
    expires_at: datetime
    bucket: str
    region: str
    prefix: str


@dataclass(frozen=True, slots=True)
class UploadTarget:
    """Where and how a browser uploads one file directly to storage."""

    key: str
    method: str  # "POST" (multipart form) or "PUT"
    url: str
    expires_at: datetime
    fields: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    credentials: UploadCredentials | None = None  # Tencent COS only (cn market)


class ObjectNotFound(KeyError):
    """No object under that key."""


class ObjectStorage(Protocol):
    def put(self, key: str, data: bytes, content_type: str) -> StoredObject: ...

    def get(self, key: str) -> bytes:
        """Raises ObjectNotFound."""
        ...

    def head(self, key: str) -> StoredObject | None: ...

    def delete(self, key: str) -> None:
        """Idempotent."""
        ...

    def signed_url(self, key: str, expires_in_seconds: int) -> str:
        """A short-lived URL to download the object (never a permanent one)."""
        ...

    def upload_target(
        self,
        key: str,
        content_types: tuple[str, ...],
        max_size: int,
        expires_in_seconds: int,
    ) -> UploadTarget: ...

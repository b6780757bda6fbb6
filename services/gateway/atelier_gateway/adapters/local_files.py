"""The gateway's side of local object storage (the local market): serving signed download URLs
and accepting direct uploads that carry a signed policy.

The layout and the signatures are ``atelier_common.local_objects``, shared with the tasks
service's ``LocalObjectStorage`` that writes the objects and signs the URLs and policies.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from atelier_common.local_objects import (
    POLICY_FIELDS,
    AccessDenied,
    InvalidKey,
    ObjectSigner,
    UploadPolicy,
    object_path,
    read_metadata,
    write_object,
)

__all__ = [
    "POLICY_FIELDS",
    "FileAccessDenied",
    "FileMissing",
    "LocalFileStore",
    "StoredFile",
    "UploadPolicy",
]


class FileAccessDenied(Exception):
    """Tampered, expired or otherwise unacceptable signature or policy."""


class FileMissing(Exception):
    pass


@dataclass(frozen=True, slots=True)
class StoredFile:
    path: Path
    content_type: str
    size: int
    sha256: str


class LocalFileStore:
    def __init__(self, root: Path, secret: bytes) -> None:
        self._root = root
        self._signer = ObjectSigner(secret)

    def _path(self, key: str) -> Path:
        try:
            return object_path(self._root, key)
        except InvalidKey as e:
            raise FileAccessDenied("invalid key") from e

    def open_signed(self, key: str, expires: str, signature: str, now: datetime) -> StoredFile:
        path = self._path(key)
        try:
            self._signer.check_download(key, expires, signature, now)
        except AccessDenied as e:
            raise FileAccessDenied(str(e)) from e
        metadata = read_metadata(self._root, key)
        if metadata is None:
            raise FileMissing(key)
        return StoredFile(
            path=path,
            content_type=metadata.content_type,
            size=metadata.size,
            sha256=metadata.sha256,
        )

    def check_policy(self, fields: Mapping[str, str], now: datetime) -> UploadPolicy:
        try:
            policy = self._signer.check_upload(fields, now)
        except AccessDenied as e:
            raise FileAccessDenied(str(e)) from e
        self._path(policy.key)
        return policy

    def put(self, key: str, data: bytes, content_type: str) -> StoredFile:
        path = self._path(key)
        metadata = write_object(self._root, key, data, content_type)
        return StoredFile(
            path=path,
            content_type=metadata.content_type,
            size=metadata.size,
            sha256=metadata.sha256,
        )

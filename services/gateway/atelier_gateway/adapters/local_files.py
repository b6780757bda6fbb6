"""The gateway's side of local object storage (the local market): serving signed download URLs
and accepting direct uploads that carry a signed policy.

The format is the contract of the tasks service's ``LocalObjectStorage``: ``<root>/<key>`` holds
the bytes and ``<root>/<key>.meta.json`` the content type, size and sha256; a download URL
carries ``expires`` and ``signature`` = HMAC-SHA256(secret, "GET\\n<key>\\n<expires>"); an upload
form carries ``key``, ``content_types``, ``max_size``, ``expires`` and ``signature`` =
HMAC-SHA256(secret, "POST\\n<key>\\n<content_types>\\n<max_size>\\n<expires>").
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

_META = ".meta.json"
POLICY_FIELDS = ("key", "content_types", "max_size", "expires", "signature")


class FileAccessDenied(Exception):
    """Tampered, expired or otherwise unacceptable signature or policy."""


class FileMissing(Exception):
    pass


@dataclass(frozen=True, slots=True)
class UploadPolicy:
    key: str
    content_types: tuple[str, ...]
    max_size: int
    expires: int


@dataclass(frozen=True, slots=True)
class StoredFile:
    path: Path
    content_type: str
    size: int
    sha256: str


class LocalFileStore:
    def __init__(self, root: Path, secret: bytes) -> None:
        self._root = root
        self._secret = secret

    def _path(self, key: str) -> Path:
        parts = key.split("/")
        if (
            not key
            or key.startswith("/")
            or "\\" in key
            or any(p in ("", ".", "..") for p in parts)
            or key.endswith(_META)
        ):
            raise FileAccessDenied("invalid key")
        return self._root.joinpath(*parts)

    def _sign(self, *parts: str) -> str:
        return hmac.new(self._secret, "\n".join(parts).encode(), hashlib.sha256).hexdigest()

    def open_signed(self, key: str, expires: str, signature: str, now: datetime) -> StoredFile:
        path = self._path(key)
        if not expires.isdigit() or int(expires) < now.timestamp():
            raise FileAccessDenied("expired or malformed link")
        if not hmac.compare_digest(self._sign("GET", key, expires), signature):
            raise FileAccessDenied("bad signature")
        try:
            meta = json.loads(Path(str(path) + _META).read_text())
        except (FileNotFoundError, ValueError) as e:
            raise FileMissing(key) from e
        if not path.is_file():
            raise FileMissing(key)
        return StoredFile(
            path=path,
            content_type=str(meta["content_type"]),
            size=int(meta["size"]),
            sha256=str(meta["sha256"]),
        )

    def check_policy(self, fields: Mapping[str, str], now: datetime) -> UploadPolicy:
        try:
            values = [fields[name] for name in POLICY_FIELDS]
        except KeyError as e:
            raise FileAccessDenied(f"missing policy field {e.args[0]}") from e
        key, content_types, max_size, expires, signature = values
        if not hmac.compare_digest(
            self._sign("POST", key, content_types, max_size, expires), signature
        ):
            raise FileAccessDenied("bad policy signature")
        if not expires.isdigit() or int(expires) < now.timestamp():
            raise FileAccessDenied("upload policy expired")
        self._path(key)
        return UploadPolicy(
            key=key,
            content_types=tuple(content_types.split(",")),
            max_size=int(max_size),
            expires=int(expires),
        )

    def put(self, key: str, data: bytes, content_type: str) -> StoredFile:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256(data).hexdigest()
        _atomic_write(path, data)
        meta = {"content_type": content_type, "size": len(data), "sha256": digest}
        _atomic_write(Path(str(path) + _META), json.dumps(meta).encode())
        return StoredFile(path=path, content_type=content_type, size=len(data), sha256=digest)


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise

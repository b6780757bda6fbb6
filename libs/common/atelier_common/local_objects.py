"""The local object store's format, shared by the tasks service (which writes objects and signs
URLs and upload policies) and the gateway (which serves the files and accepts direct uploads).

Layout: ``<root>/<key>`` holds the bytes, ``<root>/<key>.meta.json`` the content type, size and
sha256. A key is ``/``-separated, relative, without empty, ``.`` or ``..`` parts or backslashes,
and may not end with the sidecar suffix.

Download URLs are ``<base_url>/<key>?expires=<unix>&signature=<hex>`` where the signature is
HMAC-SHA256(secret, "GET\\n<key>\\n<expires>"). Upload targets are a multipart POST whose form
fields ``key``, ``content_types`` (comma-separated), ``max_size`` and ``expires`` are signed as
``signature`` = HMAC-SHA256(secret, "POST\\n<key>\\n<content_types>\\n<max_size>\\n<expires>").

Standard library only.
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
from urllib.parse import quote

META_SUFFIX = ".meta.json"
POLICY_FIELDS = ("key", "content_types", "max_size", "expires", "signature")


class InvalidKey(ValueError):
    """The key would leave the root, collide with a sidecar or is otherwise malformed."""


class AccessDenied(Exception):
    """Tampered, expired or malformed download link or upload policy."""


@dataclass(frozen=True, slots=True)
class ObjectMetadata:
    content_type: str
    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class UploadPolicy:
    key: str
    content_types: tuple[str, ...]
    max_size: int
    expires: int

    def allows_content_type(self, content_type: str) -> bool:
        return content_type in self.content_types

    def allows_size(self, size: int) -> bool:
        return size <= self.max_size


# --- on-disk format ----------------------------------------------------------------------------


def object_path(root: Path, key: str) -> Path:
    parts = key.split("/")
    bad_part = any(p in ("", ".", "..") for p in parts)
    if not key or key.startswith("/") or "\\" in key or bad_part:
        raise InvalidKey(f"invalid object key {key!r}")
    if key.endswith(META_SUFFIX):
        raise InvalidKey("reserved suffix")
    return root.joinpath(*parts)


def _sidecar(path: Path) -> Path:
    return Path(str(path) + META_SUFFIX)


def write_object(root: Path, key: str, data: bytes, content_type: str) -> ObjectMetadata:
    """Writes the bytes, then the sidecar, each atomically."""
    path = object_path(root, key)
    path.parent.mkdir(parents=True, exist_ok=True)
    metadata = ObjectMetadata(
        content_type=content_type, size=len(data), sha256=hashlib.sha256(data).hexdigest()
    )
    _atomic_write(path, data)
    sidecar = {"content_type": content_type, "size": metadata.size, "sha256": metadata.sha256}
    _atomic_write(_sidecar(path), json.dumps(sidecar).encode())
    return metadata


def read_metadata(root: Path, key: str) -> ObjectMetadata | None:
    """None when the object or its sidecar is missing or the sidecar is not JSON."""
    path = object_path(root, key)
    try:
        meta = json.loads(_sidecar(path).read_text())
    except (FileNotFoundError, ValueError):
        return None
    if not path.is_file():
        return None
    return ObjectMetadata(
        content_type=str(meta["content_type"]),
        size=int(meta["size"]),
        sha256=str(meta["sha256"]),
    )


def delete_object(root: Path, key: str) -> None:
    path = object_path(root, key)
    for p in (path, _sidecar(path)):
        p.unlink(missing_ok=True)


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# --- signing -----------------------------------------------------------------------------------


class ObjectSigner:
    """Signs and verifies download URLs and upload policies with one shared secret."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def _sign(self, *parts: str) -> str:
        return hmac.new(self._secret, "\n".join(parts).encode(), hashlib.sha256).hexdigest()

    def download_url(self, base_url: str, key: str, expires: int) -> str:
        signature = self._sign("GET", key, str(expires))
        return f"{base_url}/{quote(key)}?expires={expires}&signature={signature}"

    def check_download(self, key: str, expires: str, signature: str, now: datetime) -> None:
        """Raises AccessDenied unless the link is untampered and not expired."""
        if not expires.isdigit() or int(expires) < now.timestamp():
            raise AccessDenied("expired or malformed link")
        if not hmac.compare_digest(self._sign("GET", key, expires), signature):
            raise AccessDenied("bad signature")

    def upload_fields(
        self, key: str, content_types: tuple[str, ...], max_size: int, expires: int
    ) -> dict[str, str]:
        fields = {
            "key": key,
            "content_types": ",".join(content_types),
            "max_size": str(max_size),
            "expires": str(expires),
        }
        fields["signature"] = self._sign(
            "POST", fields["key"], fields["content_types"], fields["max_size"], fields["expires"]
        )
        return fields

    def check_upload(self, fields: Mapping[str, str], now: datetime) -> UploadPolicy:
        """The signed policy of an upload form; raises AccessDenied if it is missing a field,
        tampered or expired. The key itself is not checked here (see ``object_path``)."""
        try:
            values = [fields[name] for name in POLICY_FIELDS]
        except KeyError as e:
            raise AccessDenied(f"missing policy field {e.args[0]}") from e
        key, content_types, max_size, expires, signature = values
        if not hmac.compare_digest(
            self._sign("POST", key, content_types, max_size, expires), signature
        ):
            raise AccessDenied("bad policy signature")
        if not expires.isdigit() or int(expires) < now.timestamp():
            raise AccessDenied("upload policy expired")
        return UploadPolicy(
            key=key,
            content_types=tuple(content_types.split(",")),
            max_size=int(max_size),
            expires=int(expires),
        )

"""Object storage in local files, with HMAC-signed expiring URLs (served by the gateway).

Layout: ``<root>/<key>`` holds the bytes, ``<root>/<key>.meta.json`` the content type, size and
sha256. Download URLs are ``<base_url>/<key>?expires=<unix>&signature=<hex>`` where the signature
is HMAC-SHA256(secret, "GET\\n<key>\\n<expires>"); upload targets are a multipart POST to
``<upload_url>`` whose form fields carry a policy signed the same way (key, content types,
maximum size, expiry).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import tempfile
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

from atelier_ports.clock import Clock
from atelier_ports.storage import ObjectNotFound, StoredObject, UploadTarget

_META = ".meta.json"


class InvalidKey(ValueError):
    pass


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
        self._secret = secret
        self._clock = clock
        self.base_url = base_url.rstrip("/")
        self.upload_url = upload_url
        root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        parts = key.split("/")
        bad_part = any(p in ("", ".", "..") for p in parts)
        if not key or key.startswith("/") or "\\" in key or bad_part:
            raise InvalidKey(f"invalid object key {key!r}")
        if key.endswith(_META):
            raise InvalidKey("reserved suffix")
        return self.root.joinpath(*parts)

    def put(self, key: str, data: bytes, content_type: str) -> StoredObject:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        obj = StoredObject(
            key=key,
            size=len(data),
            content_type=content_type,
            sha256=hashlib.sha256(data).hexdigest(),
        )
        _atomic_write(path, data)
        meta = {"content_type": content_type, "size": obj.size, "sha256": obj.sha256}
        _atomic_write(Path(str(path) + _META), json.dumps(meta).encode())
        return obj

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except (FileNotFoundError, IsADirectoryError, InvalidKey):
            raise ObjectNotFound(key) from None

    def head(self, key: str) -> StoredObject | None:
        try:
            path = self._path(key)
            meta = json.loads(Path(str(path) + _META).read_text())
        except (FileNotFoundError, InvalidKey, ValueError):
            return None
        if not path.is_file():
            return None
        return StoredObject(
            key=key,
            size=int(meta["size"]),
            content_type=meta["content_type"],
            sha256=meta["sha256"],
        )

    def delete(self, key: str) -> None:
        path = self._path(key)
        for p in (path, Path(str(path) + _META)):
            p.unlink(missing_ok=True)

    # --- signing -------------------------------------------------------------------------------

    def _sign(self, *parts: str) -> str:
        return hmac.new(self._secret, "\n".join(parts).encode(), hashlib.sha256).hexdigest()

    def signed_url(self, key: str, expires_in_seconds: int) -> str:
        self._path(key)
        expires = int((self._clock.now() + timedelta(seconds=expires_in_seconds)).timestamp())
        signature = self._sign("GET", key, str(expires))
        return f"{self.base_url}/{quote(key)}?expires={expires}&signature={signature}"

    def verify_download(self, key: str, expires: str, signature: str) -> bool:
        """What the file-serving endpoint checks: untampered and not expired."""
        if not expires.isdigit() or int(expires) < self._clock.now().timestamp():
            return False
        return hmac.compare_digest(self._sign("GET", key, expires), signature)

    def upload_target(
        self, key: str, content_types: tuple[str, ...], max_size: int, expires_in_seconds: int
    ) -> UploadTarget:
        self._path(key)
        expires_at = self._clock.now() + timedelta(seconds=expires_in_seconds)
        fields = {
            "key": key,
            "content_types": ",".join(content_types),
            "max_size": str(max_size),
            "expires": str(int(expires_at.timestamp())),
        }
        fields["signature"] = self._sign(
            "POST", fields["key"], fields["content_types"], fields["max_size"], fields["expires"]
        )
        return UploadTarget(
            key=key, method="POST", url=self.upload_url, expires_at=expires_at, fields=fields
        )

    def accept_upload(
        self, fields: Mapping[str, str], data: bytes, content_type: str
    ) -> StoredObject:
        """What the upload endpoint does with a browser's POST; raises PermissionError."""
        try:
            expected = self._sign(
                "POST",
                fields["key"],
                fields["content_types"],
                fields["max_size"],
                fields["expires"],
            )
            ok = hmac.compare_digest(expected, fields["signature"])
            expired = int(fields["expires"]) < self._clock.now().timestamp()
        except (KeyError, ValueError):
            raise PermissionError("malformed upload policy") from None
        if not ok or expired:
            raise PermissionError("upload policy is invalid or expired")
        if content_type not in fields["content_types"].split(","):
            raise PermissionError("content type not allowed")
        if len(data) > int(fields["max_size"]):
            raise PermissionError("file too large")
        return self.put(fields["key"], data, content_type)


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise

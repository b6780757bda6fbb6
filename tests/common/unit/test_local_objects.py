"""The local object store's format and signatures, shared by tasks (signs) and gateway (checks)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
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

NOW = datetime(2026, 1, 1, tzinfo=UTC)
EXPIRES = int((NOW + timedelta(minutes=5)).timestamp())


def _query(url: str) -> tuple[str, str]:
    query = parse_qs(urlsplit(url).query)
    return query["expires"][0], query["signature"][0]


def test_objects_round_trip_with_sidecar(tmp_path: Path) -> None:
    written = write_object(tmp_path, "u1/a/b.png", b"data", "image/png")
    assert read_metadata(tmp_path, "u1/a/b.png") == written
    assert written == ObjectMetadata("image/png", 4, written.sha256) and len(written.sha256) == 64
    assert (tmp_path / "u1/a/b.png.meta.json").is_file()
    assert not [p for p in (tmp_path / "u1/a").iterdir() if p.name.startswith(".tmp-")]
    delete_object(tmp_path, "u1/a/b.png")
    assert read_metadata(tmp_path, "u1/a/b.png") is None


@pytest.mark.parametrize(
    "key", ["", "../x", "u1/../../x", "/abs", "u1//x", "u1/./x", "u1\\x", "u1/x.meta.json"]
)
def test_keys_that_leave_the_root_or_hit_a_sidecar_are_refused(tmp_path: Path, key: str) -> None:
    with pytest.raises(InvalidKey):
        object_path(tmp_path, key)
    with pytest.raises(InvalidKey):
        write_object(tmp_path, key, b"x", "image/png")


def test_download_links_are_refused_when_tampered_or_expired() -> None:
    signer = ObjectSigner(b"secret")
    expires, signature = _query(signer.download_url("http://gw/files", "u1/a b.png", EXPIRES))
    signer.check_download("u1/a b.png", expires, signature, NOW)
    for key, exp, sig in [
        ("u1/other.png", expires, signature),
        ("u1/a b.png", str(EXPIRES + 1), signature),
        ("u1/a b.png", expires, signature[:-1] + ("0" if signature[-1] != "0" else "1")),
        ("u1/a b.png", expires, ""),
        ("u1/a b.png", f"-{expires}", signature),
    ]:
        with pytest.raises(AccessDenied):
            signer.check_download(key, exp, sig, NOW)
    with pytest.raises(AccessDenied):
        ObjectSigner(b"other").check_download("u1/a b.png", expires, signature, NOW)
    with pytest.raises(AccessDenied, match="expired"):
        signer.check_download("u1/a b.png", expires, signature, NOW + timedelta(minutes=6))


def test_upload_policies_pin_key_types_size_and_expiry() -> None:
    signer = ObjectSigner(b"secret")
    fields = signer.upload_fields("u1/up/x.png", ("image/png", "image/jpeg"), 10, EXPIRES)
    policy = signer.check_upload(fields, NOW)
    assert (policy.key, policy.max_size, policy.expires) == ("u1/up/x.png", 10, EXPIRES)
    assert policy.allows_content_type("image/jpeg") and not policy.allows_content_type("image/gif")
    assert policy.allows_size(10) and not policy.allows_size(11)
    for name, value in [
        ("key", "u2/steal.png"),
        ("content_types", "image/png,image/gif"),
        ("max_size", "1000000"),
        ("expires", str(EXPIRES + 3600)),
    ]:
        with pytest.raises(AccessDenied, match="signature"):
            signer.check_upload({**fields, name: value}, NOW)
    with pytest.raises(AccessDenied, match="missing policy field signature"):
        signer.check_upload({k: v for k, v in fields.items() if k != "signature"}, NOW)
    with pytest.raises(AccessDenied, match="expired"):
        signer.check_upload(fields, NOW + timedelta(minutes=6))

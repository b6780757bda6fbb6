"""Opaque page tokens: one encoding for every paged listing of every service.

A token is the URL-safe base64 of a small JSON document ``{"k": kind, "v": [values...]}``: the
listing it belongs to (``kind``) and the keyset position to continue after. Clients treat it as
opaque; a token that is malformed, belongs to another listing, or carries values of the wrong
shape raises :class:`InvalidPageToken` (gRPC INVALID_ARGUMENT, HTTP 400 ``validation_error``),
never an error further down (an integer too big for the database, a wrong type).
"""

from __future__ import annotations

import base64
import binascii
import json

from atelier_ports.problems import InvalidArgument

MAX_TOKEN_LENGTH = 512
_INT_MIN = -(2**63)
_INT_MAX = 2**63 - 1

CursorValue = str | int


class InvalidPageToken(InvalidArgument):
    reason = "INVALID_PAGE_TOKEN"

    def __init__(self, message: str = "page_token is not valid") -> None:
        super().__init__(message, field="page_token")


def encode_page_token(kind: str, *values: CursorValue) -> str:
    raw = json.dumps({"k": kind, "v": list(values)}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_page_token(
    token: str, kind: str, shape: tuple[type[str] | type[int], ...]
) -> tuple[CursorValue, ...]:
    """The values of ``token`` for listing ``kind``, each of the type ``shape`` names."""
    if len(token) > MAX_TOKEN_LENGTH:
        raise InvalidPageToken("page_token is too long")
    try:
        padded = token + "=" * (-len(token) % 4)
        doc = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (ValueError, UnicodeError, binascii.Error, RecursionError):
        raise InvalidPageToken() from None
    if not isinstance(doc, dict) or doc.get("k") != kind:
        raise InvalidPageToken()
    values = doc.get("v")
    if not isinstance(values, list) or len(values) != len(shape):
        raise InvalidPageToken()
    for value, expected in zip(values, shape, strict=True):
        if expected is int:
            if isinstance(value, bool) or not isinstance(value, int):
                raise InvalidPageToken()
            if not _INT_MIN <= value <= _INT_MAX:
                raise InvalidPageToken()
        elif not isinstance(value, str) or len(value) > 256:
            raise InvalidPageToken()
    return tuple(values)

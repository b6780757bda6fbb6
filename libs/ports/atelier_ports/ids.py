"""Identifier source as a port, so tests can make ids predictable."""

from __future__ import annotations

import secrets
import uuid
from typing import Protocol

# Crockford's base32 without look-alikes: readable on a receipt and over the phone.
_READABLE = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


class IdGenerator(Protocol):
    def new_id(self, prefix: str) -> str:
        """A new globally unique opaque id such as ``ord_3f2a...``."""
        ...

    def readable_code(self, length: int) -> str:
        """A short random code for humans (order numbers), upper-case base32."""
        ...


class RandomIdGenerator:
    """uuid4-based ids and secrets-based readable codes."""

    def new_id(self, prefix: str) -> str:
        return f"{prefix}_{uuid.uuid4().hex}"

    def readable_code(self, length: int) -> str:
        return "".join(secrets.choice(_READABLE) for _ in range(length))

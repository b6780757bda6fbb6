"""Entities and value objects of the gateway."""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from atelier_ports.problems import InvalidArgument

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 256
MAX_NAME_LENGTH = 100
MAX_URL_LENGTH = 2000
MAX_PREFERENCES_BYTES = 16_384


class Role(enum.StrEnum):
    USER = "user"
    ADMIN = "admin"


@dataclass(slots=True)
class User:
    id: str
    email: str | None
    password_hash: str | None
    role: Role
    created_at: datetime
    name: str = ""
    phone: str | None = None
    avatar_url: str | None = None
    preferences: dict[str, Any] = field(default_factory=dict)
    billing_ready: bool = False  # billing's SetUpAccount has succeeded for this user


@dataclass(frozen=True, slots=True)
class RefreshTokenRecord:
    """One refresh token of a family (all tokens descending from one log-in)."""

    id: str
    user_id: str
    family_id: str
    token_hash: str
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None = None
    revoked_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class IdempotencyRecord:
    """A client's Idempotency-Key and, once the first request finished, its response."""

    user_id: str
    key: str
    scope: str  # method and route, e.g. "POST /v1/orders"
    request_hash: str
    created_at: datetime
    status: int | None = None
    response: bytes | None = None

    @property
    def completed(self) -> bool:
        return self.status is not None


def normalise_email(raw: str) -> str:
    email = raw.strip().lower()
    if len(email) > 254 or not _EMAIL.match(email):
        raise InvalidArgument("not a valid email address", field="email")
    return email


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidArgument(
            f"password must have at least {MIN_PASSWORD_LENGTH} characters", field="password"
        )
    if len(password) > MAX_PASSWORD_LENGTH:
        raise InvalidArgument(
            f"password must have at most {MAX_PASSWORD_LENGTH} characters", field="password"
        )


def check_name(name: str) -> str:
    name = name.strip()
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidArgument(f"name must have at most {MAX_NAME_LENGTH} characters", field="name")
    return name


def check_avatar_url(url: str | None) -> str | None:
    if url is None or url == "":
        return None
    if len(url) > MAX_URL_LENGTH or not (url.startswith("https://") or url.startswith("http://")):
        raise InvalidArgument("avatar_url must be an http(s) URL", field="avatar_url")
    return url


def check_preferences(prefs: Mapping[str, Any], encoded_size: int) -> dict[str, Any]:
    if encoded_size > MAX_PREFERENCES_BYTES:
        raise InvalidArgument(
            f"preferences must be at most {MAX_PREFERENCES_BYTES} bytes", field="preferences"
        )
    return dict(prefs)

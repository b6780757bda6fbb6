"""Sessions and profiles: the response models and their presenters."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from atelier_gateway.application.sessions import Session
from atelier_gateway.domain.model import User
from atelier_gateway.entrypoints.http.contract import ResponseModel, Timestamp
from atelier_gateway.entrypoints.http.presenters import rfc3339

Role = Literal["user", "admin"]


class UserSummary(ResponseModel):
    id: str
    email: str | None
    phone: str | None
    name: str
    role: Role


class SessionResponse(ResponseModel):
    user: UserSummary
    access_token: str
    refresh_token: str = Field(
        description="Empty when the refresh token was set in the cookie (X-Refresh-Token-Cookie: 1)"
    )
    token_type: Literal["Bearer"] = "Bearer"
    expires_in: int = Field(description="Seconds until the access token expires")


class Profile(ResponseModel):
    id: str
    email: str | None
    phone: str | None
    name: str
    avatar_url: str | None
    preferences: dict[str, Any]
    role: Role
    created_at: Timestamp


class UserPage(ResponseModel):
    items: list[Profile]
    next_page_token: str


def user_summary(user: User) -> UserSummary:
    return UserSummary(
        id=user.id, email=user.email, phone=user.phone, name=user.name, role=user.role.value
    )


def profile(user: User) -> Profile:
    return Profile(
        id=user.id,
        email=user.email,
        phone=user.phone,
        name=user.name,
        avatar_url=user.avatar_url,
        preferences=user.preferences,
        role=user.role.value,
        created_at=rfc3339(user.created_at) or "",
    )


def session(s: Session) -> SessionResponse:
    return SessionResponse(
        user=user_summary(s.user),
        access_token=s.access_token,
        refresh_token=s.refresh_token,
        expires_in=s.expires_in,
    )


def user_page(users: list[User], next_page_token: str) -> UserPage:
    return UserPage(items=[profile(u) for u in users], next_page_token=next_page_token)

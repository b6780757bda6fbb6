"""Profiles: reading and editing your own, and the administrators' user search and promotion."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from atelier_gateway.application.ports import (
    BillingAccounts,
    GatewayUnitOfWorkFactory,
    PhoneNumbers,
)
from atelier_gateway.domain import model
from atelier_gateway.domain.errors import UserNotFound
from atelier_gateway.domain.model import Role, User
from atelier_ports.problems import Unavailable

log = logging.getLogger("atelier.gateway")


@dataclass(frozen=True, slots=True)
class ProfileChanges:
    """Only fields present in the request are changed (``None`` means "leave as is"; the avatar
    is removed with ``avatar_url=None, avatar_url_set=True``)."""

    user_id: str
    name: str | None = None
    avatar_url: str | None = None
    avatar_url_set: bool = False
    preferences: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class UserSearch:
    query: str
    limit: int
    offset: int


class GetProfile:
    def __init__(self, *, uow: GatewayUnitOfWorkFactory) -> None:
        self._uow = uow

    def __call__(self, user_id: str) -> User:
        with self._uow() as uow:
            user = uow.users.get(user_id)
        if user is None:
            raise UserNotFound("user not found")
        return user


class UpdateProfile:
    def __init__(self, *, uow: GatewayUnitOfWorkFactory, billing: BillingAccounts) -> None:
        self._uow = uow
        self._billing = billing

    def __call__(self, changes: ProfileChanges) -> User:
        name = model.check_name(changes.name) if changes.name is not None else None
        avatar = model.check_avatar_url(changes.avatar_url) if changes.avatar_url_set else None
        prefs = None
        if changes.preferences is not None:
            size = len(json.dumps(changes.preferences, separators=(",", ":")).encode())
            prefs = model.check_preferences(changes.preferences, size)
        with self._uow() as uow:
            user = uow.users.get(changes.user_id)
            if user is None:
                raise UserNotFound("user not found")
            if name is not None:
                user.name = name
            if changes.avatar_url_set:
                user.avatar_url = avatar
            if prefs is not None:
                user.preferences = prefs
            uow.users.save(user)
            uow.commit()
        if name is not None:
            try:
                self._billing.update_contact(user.id, None, name)
            except Unavailable:
                # The profile is ours and is saved; the provider's copy catches up at the next
                # edit. Logged so an operator sees the drift.
                log.warning(
                    "could not push the profile to billing", extra={"fields": {"user": user.id}}
                )
        return user


class PromoteAdmin:
    """Make the user with this email, or this phone number (phone-only accounts), an admin."""

    def __init__(self, *, uow: GatewayUnitOfWorkFactory, phones: PhoneNumbers) -> None:
        self._uow = uow
        self._phones = phones

    def __call__(self, email_or_phone: str) -> User:
        by_email = "@" in email_or_phone
        if by_email:
            wanted = model.normalise_email(email_or_phone)
        else:
            wanted = self._phones.normalise(email_or_phone)
        with self._uow() as uow:
            user = uow.users.get_by_email(wanted) if by_email else uow.users.get_by_phone(wanted)
            if user is None:
                what = "email" if by_email else "phone"
                raise UserNotFound(f"no user with {what} {email_or_phone}")
            user.role = Role.ADMIN
            uow.users.save(user)
            uow.commit()
        return user


class SearchUsers:
    def __init__(self, *, uow: GatewayUnitOfWorkFactory) -> None:
        self._uow = uow

    def __call__(self, search: UserSearch) -> list[User]:
        with self._uow() as uow:
            return uow.users.search(search.query.strip().lower(), search.limit, search.offset)

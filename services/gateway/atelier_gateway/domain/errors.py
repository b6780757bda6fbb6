"""Intention-revealing business errors of the gateway."""

from __future__ import annotations

from atelier_ports.problems import AlreadyExists, NotFound, Unauthenticated


class EmailTaken(AlreadyExists):
    reason = "EMAIL_TAKEN"


class InvalidCredentials(Unauthenticated):
    reason = "INVALID_CREDENTIALS"


class InvalidRefreshToken(Unauthenticated):
    reason = "INVALID_REFRESH_TOKEN"


class RefreshTokenReused(Unauthenticated):
    """An already-rotated refresh token came back: the whole family is revoked."""

    reason = "REFRESH_TOKEN_REUSED"


class InvalidAccessToken(Unauthenticated):
    reason = "INVALID_ACCESS_TOKEN"


class UserNotFound(NotFound):
    reason = "USER_NOT_FOUND"


class IdempotencyKeyReused(AlreadyExists):
    """The same Idempotency-Key came with a different request."""

    reason = "IDEMPOTENCY_KEY_REUSED"


class IdempotencyKeyInFlight(AlreadyExists):
    """The first request with this Idempotency-Key has not finished yet."""

    reason = "IDEMPOTENCY_KEY_IN_FLIGHT"

"""Intention-revealing business errors of the gateway."""

from __future__ import annotations

from atelier_ports.problems import (
    AlreadyExists,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
)


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


# --- phone + SMS log-in (F2) ---------------------------------------------------------------------


class InvalidCode(InvalidArgument):
    """A wrong, expired, used or never-sent SMS code."""

    reason = "INVALID_CODE"

    def __init__(self, message: str) -> None:
        super().__init__(message, field="code")


class CodeLocked(ResourceExhausted):
    """Too many wrong guesses of the current code: only a new code helps."""

    reason = "CODE_LOCKED"


class SmsRateLimited(ResourceExhausted):
    """Past a sending limit (per phone or per address); ``retry_after`` is in seconds."""

    reason = "SMS_RATE_LIMITED"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message, metadata={"retry_after": str(retry_after)})
        self.retry_after = retry_after


class PhoneTaken(AlreadyExists):
    """The phone number already belongs to another account."""

    reason = "PHONE_TAKEN"


class SmsNotDelivered(Unavailable):
    """The SMS provider could not be reached or refused to send; nothing was changed."""

    reason = "SMS_NOT_DELIVERED"

"""Intention-revealing business errors of billing (categories from atelier_ports.problems)."""

from __future__ import annotations

from atelier_ports import problems


class InsufficientCredits(problems.FailedPrecondition):
    reason = "INSUFFICIENT_CREDITS"


class AccountNotFound(problems.NotFound):
    reason = "ACCOUNT_NOT_FOUND"


class HoldNotFound(problems.NotFound):
    reason = "HOLD_NOT_FOUND"


class HoldAlreadyCaptured(problems.FailedPrecondition):
    reason = "HOLD_ALREADY_CAPTURED"


class HoldAlreadyReleased(problems.FailedPrecondition):
    reason = "HOLD_ALREADY_RELEASED"


class IdempotencyConflict(problems.AlreadyExists):
    """The same idempotency key was used with different parameters."""

    reason = "IDEMPOTENCY_KEY_REUSED"


class CatalogItemNotFound(problems.InvalidArgument):
    reason = "UNKNOWN_CATALOG_ITEM"


class ChannelNotAvailable(problems.InvalidArgument):
    reason = "UNKNOWN_CHANNEL"


class OrderNotFound(problems.NotFound):
    reason = "ORDER_NOT_FOUND"


class InvalidSignature(problems.InvalidArgument):
    reason = "INVALID_SIGNATURE"


class UnknownProvider(problems.InvalidArgument):
    reason = "UNKNOWN_PROVIDER"


class PaymentAmountMismatch(problems.FailedPrecondition):
    reason = "PAYMENT_AMOUNT_MISMATCH"


class OrderNotPayable(problems.FailedPrecondition):
    reason = "ORDER_NOT_PENDING"


class NotSandboxChannel(problems.FailedPrecondition):
    reason = "NOT_A_SANDBOX_CHANNEL"


class PaymentProviderUnavailable(problems.Unavailable):
    reason = "PAYMENT_PROVIDER_UNAVAILABLE"


class AdminOnly(problems.PermissionDenied):
    reason = "ADMIN_ONLY"


class SubscriptionNotYetKnown(problems.FailedPrecondition):
    """An event about a subscription arrived before the checkout that created it."""

    reason = "SUBSCRIPTION_NOT_YET_KNOWN"


class PaymentProviderRejected(problems.FailedPrecondition):
    reason = "PAYMENT_PROVIDER_REJECTED"

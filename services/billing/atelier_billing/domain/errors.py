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


class PaymentMismatch(problems.FailedPrecondition):
    """A verified payment event that does not match the order it names: it never pays."""

    reason = "PAYMENT_MISMATCH"


class PaymentAmountMismatch(PaymentMismatch):
    reason = "PAYMENT_AMOUNT_MISMATCH"


class PaymentOrderMismatch(PaymentMismatch):
    """The event's order number (WeChat's out_trade_no) is not the order's."""

    reason = "PAYMENT_ORDER_MISMATCH"


class PaymentPayeeMismatch(PaymentMismatch):
    """The event names another merchant or app than ours (WeChat's mchid, appid)."""

    reason = "PAYMENT_PAYEE_MISMATCH"


class RefundBeforePayment(problems.FailedPrecondition):
    """A refund of an order we have not seen paid yet: refused unrecorded, so the provider
    delivers it again once the payment has arrived."""

    reason = "REFUND_BEFORE_PAYMENT"


class OrderNotRefundable(problems.FailedPrecondition):
    reason = "ORDER_NOT_REFUNDABLE"


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

"""Intention-revealing business errors of the tasks service."""

from __future__ import annotations

from atelier_ports import problems


class TaskNotFound(problems.NotFound):
    """Also what another user's task looks like: never a 403 that leaks existence."""

    reason = "TASK_NOT_FOUND"


class InvalidParams(problems.InvalidArgument):
    reason = "INVALID_PARAMS"


class UnknownTaskType(problems.InvalidArgument):
    reason = "UNKNOWN_TASK_TYPE"


class InsufficientCredits(problems.FailedPrecondition):
    reason = "INSUFFICIENT_CREDITS"


class TaskNotCancellable(problems.FailedPrecondition):
    reason = "TASK_NOT_CANCELLABLE"


class AdminOnly(problems.PermissionDenied):
    """Listing every user's tasks is for admins."""

    reason = "ADMIN_ONLY"


class InvalidTransition(problems.FailedPrecondition):
    reason = "INVALID_TRANSITION"


class DailyLimitReached(problems.ResourceExhausted):
    reason = "DAILY_LIMIT_REACHED"


class RequestIdConflict(problems.AlreadyExists):
    """The idempotency key was used before with different parameters."""

    reason = "REQUEST_ID_CONFLICT"


class BillingUnavailable(problems.Unavailable):
    reason = "BILLING_UNAVAILABLE"


class InvalidUpload(problems.InvalidArgument):
    reason = "INVALID_UPLOAD"


class BillingRefused(problems.DomainError):
    """Billing answered a hold with something other than yes or "not enough credits" (a
    conflicting request id, a refused credential…): nothing was held, and asking again would
    get the same answer. An internal error for the caller."""

    reason = "BILLING_REFUSED"


class ContentRejected(problems.InvalidArgument):
    """Content moderation refused what the caller sent (a prompt): nothing was created or
    charged; the decision is recorded."""

    reason = "CONTENT_REJECTED"


class ModerationUnavailable(problems.Unavailable):
    """The moderation provider could not answer: nothing was done (never fails open)."""

    reason = "MODERATION_UNAVAILABLE"


class DecisionNotFound(problems.NotFound):
    reason = "DECISION_NOT_FOUND"


class DecisionNotOverturnable(problems.FailedPrecondition):
    """Only a rejection can be overturned."""

    reason = "DECISION_NOT_OVERTURNABLE"

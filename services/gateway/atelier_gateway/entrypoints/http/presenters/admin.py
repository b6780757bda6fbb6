"""The admin console: a user's page, the timeline, a credit adjustment — response models and
their presenters."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from atelier_gateway.application import billing_views as bv
from atelier_gateway.application import task_views as tv
from atelier_gateway.application.admin_timeline import TimelineItem
from atelier_gateway.application.calls import Page
from atelier_gateway.domain.model import User
from atelier_gateway.entrypoints.http.contract import ResponseModel, Timestamp
from atelier_gateway.entrypoints.http.presenters import billing as billing_present
from atelier_gateway.entrypoints.http.presenters import rfc3339
from atelier_gateway.entrypoints.http.presenters.accounts import Profile, profile
from atelier_gateway.entrypoints.http.presenters.billing import Balance, Grant, Order
from atelier_gateway.entrypoints.http.presenters.tasks import Task, task

TimelineKind = Literal[
    "grant",
    "hold",
    "capture",
    "release",
    "expire",
    "adjust",
    "payment",
    "refund",
    "task",
    "moderation",
]
CauseType = Literal["task", "order", "signup", "admin"]


class AdminTask(Task):
    user_id: str = Field(description="The task's owner")


class AdminTaskPage(ResponseModel):
    items: list[AdminTask]
    next_page_token: str


class AdminUser(ResponseModel):
    profile: Profile
    balance: Balance
    grants: list[Grant] = Field(description="Every grant, expired and spent ones included")
    recent_orders: list[Order] = Field(description="The newest orders, newest first")
    recent_tasks: list[AdminTask] = Field(description="The newest tasks, newest first")


class ModerationLabel(ResponseModel):
    name: str = Field(description="The provider's own label")
    confidence: float = Field(ge=0, le=1)


class ModerationItem(ResponseModel):
    id: str
    task_id: str | None = Field(
        description="The task checked; null for a refused prompt (no task was created)"
    )
    user_id: str
    subject: tv.ModerationSubject = Field(
        description="prompt (at creation), input_image (before dispatch), result_image "
        "(before it is stored)"
    )
    verdict: tv.ModerationVerdict
    labels: list[ModerationLabel]
    provider: str = Field(
        description="local, tencent or aws; admin for content an overturn vouched for"
    )
    request_id: str | None = Field(description="The provider's id of the check")
    created_at: Timestamp | None
    overturned_at: Timestamp | None
    overturned_by: str | None = Field(description="The admin who overturned it")
    rerun_task_id: str | None = Field(
        description="The task the overturn re-ran at no charge (null: nothing re-run)"
    )


class ModerationPage(ResponseModel):
    items: list[ModerationItem]
    next_page_token: str


class Cause(ResponseModel):
    type: CauseType = Field(
        description="task (holds, captures, releases and the task itself), order (payments, "
        "refunds, the grant an order bought, its expiry), signup (the sign-up bonus), admin "
        "(an adjustment)"
    )
    id: str | None = Field(description="The task's or the order's id; null for signup and admin")


class TimelineEntry(ResponseModel):
    id: str = Field(description="Unique in the timeline: ledger:<n>, payment:<order id>, …")
    kind: TimelineKind
    at: Timestamp | None
    credits: int | None = Field(
        description="Change of the available balance (ledger entries; negative for a hold, "
        "an expiry or a negative adjustment)"
    )
    held_change: int | None = Field(description="Change of the held balance (ledger entries)")
    balance_after: int | None = Field(description="Available balance after (ledger entries)")
    amount: int | None = Field(description="Money in minor units (payments and refunds)")
    currency: str | None
    status: str | None = Field(description="The task's or the order's status now")
    task_type: tv.TaskType | None
    reference: str = Field(description="A ledger entry's reference, an order's number, …")
    reason: str | None = Field(description="Why (adjustments; a failed task's error)")
    caused_by: Cause | None = Field(description="What caused the entry, where known")
    moderation: ModerationItem | None = Field(
        description="The content moderation decision (kind moderation)"
    )


class TimelinePage(ResponseModel):
    items: list[TimelineEntry]
    next_page_token: str


class CreditAdjustment(ResponseModel):
    user_id: str
    amount: int
    reason: str
    balance: Balance


JsonObject = dict[str, Any]


def admin_task(t: tv.Task) -> JsonObject:
    """An ``AdminTask``, as JSON (a ``Task`` with its owner)."""
    return {**task(t), "user_id": t.user_id}


def admin_task_page(page: Page[tv.Task]) -> JsonObject:
    return {"items": [admin_task(t) for t in page.items], "next_page_token": page.next_page_token}


def admin_user(user: User, account: bv.Account, tasks: list[tv.Task]) -> JsonObject:
    balance = billing_present.balance(account.balance)
    return {
        "profile": profile(user).model_dump(mode="json"),
        "balance": balance.model_dump(mode="json"),
        "grants": [g.model_dump(mode="json") for g in balance.grants],
        "recent_orders": [
            billing_present.order(o).model_dump(mode="json") for o in account.recent_orders
        ],
        "recent_tasks": [admin_task(t) for t in tasks],
    }


def _cause(kind: str, cause_id: str) -> JsonObject | None:
    if kind in ("task", "order"):
        return {"type": kind, "id": cause_id or None}
    if kind in ("signup", "admin"):
        return {"type": kind, "id": None}
    return None


_EMPTY: JsonObject = {
    "credits": None,
    "held_change": None,
    "balance_after": None,
    "amount": None,
    "currency": None,
    "status": None,
    "task_type": None,
    "reason": None,
    "caused_by": None,
    "moderation": None,
}


def timeline_entry(item: TimelineItem) -> JsonObject:
    out: JsonObject = {"id": item.id, "at": rfc3339(item.at), **_EMPTY}
    if item.decision is not None:
        d = item.decision
        labels = ", ".join(f"{x.name} {x.confidence:.2f}" for x in d.labels)
        out.update(
            kind="moderation",
            status=d.verdict,
            reference=f"{d.subject} {d.verdict} by {d.provider}",
            reason=labels or None,
            caused_by={"type": "task", "id": d.task_id} if d.task_id else None,
            moderation=moderation_item(d),
        )
        return out
    if item.task is not None:
        t = item.task
        out.update(
            kind="task",
            status=t.status,
            task_type=t.type,
            credits=None,
            reference=f"task {t.id}",
            reason=t.error,
        )
        return out
    a = item.activity
    assert a is not None
    out["caused_by"] = _cause(a.cause, a.cause_id)
    if a.ledger_entry is not None:
        e = a.ledger_entry
        out.update(
            kind=e.kind,
            credits=e.amount,
            held_change=e.held_change,
            balance_after=e.balance_after,
            reference=e.reference,
            reason=e.reason or None,
        )
    else:
        o = a.order
        assert o is not None
        out.update(
            kind=a.kind,
            amount=o.amount,
            currency=o.currency,
            status=o.status,
            reference=f"order {o.number}",
        )
    return out


def timeline_page(page: Page[TimelineItem]) -> JsonObject:
    return {
        "items": [timeline_entry(i) for i in page.items],
        "next_page_token": page.next_page_token,
    }


def moderation_item(d: tv.ModerationDecision) -> JsonObject:
    return {
        "id": d.id,
        "task_id": d.task_id,
        "user_id": d.user_id,
        "subject": d.subject,
        "verdict": d.verdict,
        "labels": [{"name": x.name, "confidence": x.confidence} for x in d.labels],
        "provider": d.provider,
        "request_id": d.request_id,
        "created_at": rfc3339(d.created_at),
        "overturned_at": rfc3339(d.overturned_at),
        "overturned_by": d.overturned_by,
        "rerun_task_id": d.rerun_task_id,
    }


def moderation_page(page: Page[tv.ModerationDecision]) -> JsonObject:
    return {
        "items": [moderation_item(d) for d in page.items],
        "next_page_token": page.next_page_token,
    }


def credit_adjustment(user_id: str, amount: int, reason: str, b: bv.Balance) -> CreditAdjustment:
    return CreditAdjustment(
        user_id=user_id, amount=amount, reason=reason, balance=billing_present.balance(b)
    )

"""The admin console's reads and writes of one user (F24): the user's page, the timeline of
everything that happened to the user's credits and tasks, and credit adjustments. Role admin
(403 otherwise, 401 without a token); billing and tasks check the role again."""

from __future__ import annotations

import asyncio
import uuid

from aiohttp import web
from pydantic import ConfigDict, Field

from atelier_gateway.application.admin_timeline import UserTimeline
from atelier_gateway.application.calls import Caller, PageRequest
from atelier_gateway.application.task_views import DecisionFilter, ModerationVerdict, TaskFilter
from atelier_gateway.domain.model import User
from atelier_gateway.entrypoints.http.context import container, in_thread, require_admin
from atelier_gateway.entrypoints.http.contract import (
    Operation,
    PageQuery,
    RequestModel,
    body_model,
    operation,
    path_id,
    query_model,
    respond,
)
from atelier_gateway.entrypoints.http.idempotent import IDEMPOTENCY_HEADER, run_idempotent
from atelier_gateway.entrypoints.http.jsonio import json_response, read_body
from atelier_gateway.entrypoints.http.presenters import admin as present
from atelier_gateway.entrypoints.http.presenters.admin import (
    AdminUser,
    CreditAdjustment,
    ModerationItem,
    ModerationPage,
    TimelinePage,
)
from atelier_gateway.entrypoints.http.problems import validation_error

routes = web.RouteTableDef()

# How many of the newest orders and tasks the user's page shows.
RECENT = 10
# The most credits one adjustment may move (billing refuses more, too).
MAX_ADJUSTMENT = 1_000_000_000


class AdjustCreditsRequest(RequestModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"amount": 50, "reason": "goodwill after an outage"}]}
    )

    amount: int = Field(
        ge=-MAX_ADJUSTMENT,
        le=MAX_ADJUSTMENT,
        description="Credits to grant (positive) or take back (negative); not 0",
    )
    reason: str = Field(min_length=1, max_length=500, description="Why (kept in the ledger)")


async def _user(request: web.Request) -> tuple[Caller, User]:
    caller = await require_admin(request)
    user_id = path_id(request, "user_id")
    user = await in_thread(request, container(request).get_profile, user_id)
    return caller, user


@operation(
    routes,
    "GET",
    "/v1/admin/users/{user_id}",
    Operation(
        "Admin: one user's profile, balance, grants, newest orders and tasks",
        response=AdminUser,
        auth="admin",
    ),
)
async def admin_user(request: web.Request) -> web.Response:
    caller, user = await _user(request)
    c = container(request)
    account, tasks = await asyncio.gather(
        c.billing.get_account(caller, user.id, RECENT),
        c.tasks.list_all_tasks(caller, PageRequest(RECENT), TaskFilter(user_id=user.id)),
    )
    return json_response(present.admin_user(user, account, list(tasks.items)))


@operation(
    routes,
    "GET",
    "/v1/admin/users/{user_id}/timeline",
    Operation(
        "Admin: one user's grants, holds, captures, releases, expiries, adjustments, payments, "
        "refunds and tasks in one list, newest first, each linked to what caused it",
        response=TimelinePage,
        query=PageQuery,
        auth="admin",
    ),
)
async def admin_user_timeline(request: web.Request) -> web.Response:
    caller, user = await _user(request)
    q = query_model(request, PageQuery)
    c = container(request)
    page = await UserTimeline(c.billing, c.tasks)(
        caller, user.id, PageRequest(q.page_size, q.page_token)
    )
    return json_response(present.timeline_page(page))


@operation(
    routes,
    "POST",
    "/v1/admin/users/{user_id}/credits",
    Operation(
        "Admin: grant (positive amount) or take back (negative) credits, with a reason "
        "(Idempotency-Key supported)",
        body=AdjustCreditsRequest,
        response=CreditAdjustment,
        auth="admin",
        headers=(IDEMPOTENCY_HEADER,),
        errors=(402, 409),
    ),
)
async def admin_adjust_credits(request: web.Request) -> web.Response:
    caller, user = await _user(request)
    raw = await read_body(request)
    body = body_model(AdjustCreditsRequest, raw, request)
    if body.amount == 0:
        raise validation_error("amount", "amount must not be 0")
    reason = body.reason.strip()
    if not reason:
        raise validation_error("reason", "reason must not be blank")

    async def produce(request_id: str | None) -> web.Response:
        balance = await container(request).billing.adjust_credits(
            caller, user.id, body.amount, reason, request_id or f"adm_{uuid.uuid4().hex}"
        )
        return respond(present.credit_adjustment(user.id, body.amount, reason, balance))

    scope = f"POST /v1/admin/users/{user.id}/credits"
    return await run_idempotent(request, caller, scope, raw, produce)


class OverturnRequest(RequestModel):
    """No fields: the decision is in the path (the body may be left out)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{}]})


class ModerationQuery(PageQuery):
    verdict: ModerationVerdict | None = None


@operation(
    routes,
    "GET",
    "/v1/admin/moderation",
    Operation(
        "Admin: content moderation decisions, newest first (verdict=rejected: the review list); "
        "each with its labels, provider, provider request id and the task it was about",
        response=ModerationPage,
        query=ModerationQuery,
        auth="admin",
    ),
)
async def admin_moderation(request: web.Request) -> web.Response:
    caller = await require_admin(request)
    q = query_model(request, ModerationQuery)
    page = await container(request).tasks.list_moderation_decisions(
        caller, PageRequest(q.page_size, q.page_token), DecisionFilter(verdict=q.verdict)
    )
    return json_response(present.moderation_page(page))


@operation(
    routes,
    "POST",
    "/v1/admin/moderation/{decision_id}/overturn",
    Operation(
        "Admin: overturn a rejection. A task it failed is re-run at no charge (a new task, "
        "cost 0, rerun_task_id) without asking about the overturned content again; a refused "
        "prompt's overturn is only recorded. Repeating it changes nothing "
        "(Idempotency-Key supported)",
        body=OverturnRequest,
        response=ModerationItem,
        auth="admin",
        headers=(IDEMPOTENCY_HEADER,),
        errors=(409,),
    ),
)
async def admin_overturn_moderation(request: web.Request) -> web.Response:
    caller = await require_admin(request)
    decision_id = path_id(request, "decision_id")
    raw = await read_body(request)
    if raw.strip():  # none is needed (like a refund's); {} is accepted, anything else refused
        body_model(OverturnRequest, raw, request)

    async def produce(_request_id: str | None) -> web.Response:
        decision = await container(request).tasks.overturn_moderation_decision(caller, decision_id)
        return json_response(present.moderation_item(decision))

    scope = f"POST /v1/admin/moderation/{decision_id}/overturn"
    return await run_idempotent(request, caller, scope, raw, produce)

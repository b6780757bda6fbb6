"""The admin console's timeline of one user: billing's account activity (ledger entries, payments,
refunds) and the user's tasks in one list, newest first.

Each source pages on its own keyset — billing on (time, kind, id), tasks on (created_at, id) —
and gives every item the page token that continues right after it. A timeline page asks each
source for up to ``page_size`` items from its cursor, merges the two ordered lists by time (at
the same instant billing's entry first) and keeps the first ``page_size``. Every item of a source
that was not kept is older than the last kept item of the *other* source or comes after the last
kept one of its own, so the next page starts, per source, right after the last item it kept: the
gateway's page token is the pair of the sources' tokens (plus whether each source is exhausted),
encoded with ``atelier_ports.paging``. No item is skipped or shown twice, whatever arrives
meanwhile (new entries are newer than every cursor).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime

from atelier_gateway.application import billing_views as bv
from atelier_gateway.application import task_views as tv
from atelier_gateway.application.calls import Caller, Page, PageRequest
from atelier_gateway.application.ports import BillingGateway, TasksGateway
from atelier_ports.paging import InvalidPageToken, decode_page_token, encode_page_token

TIMELINE_PAGE = "gw.timeline"
_NEVER = datetime.min.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class TimelineItem:
    """One timeline entry: exactly one of ``activity`` (billing) and ``task`` is set."""

    id: str
    at: datetime | None
    activity: bv.AccountActivity | None = None
    task: tv.Task | None = None


@dataclass(frozen=True, slots=True)
class _Cursor:
    billing: str = ""
    billing_done: bool = False
    tasks: str = ""
    tasks_done: bool = False

    def encode(self) -> str:
        return encode_page_token(
            TIMELINE_PAGE, self.billing, int(self.billing_done), self.tasks, int(self.tasks_done)
        )

    @staticmethod
    def decode(token: str) -> _Cursor:
        if not token:
            return _Cursor()
        billing, billing_done, tasks, tasks_done = decode_page_token(
            token, TIMELINE_PAGE, (str, int, str, int)
        )
        if billing_done not in (0, 1) or tasks_done not in (0, 1):
            raise InvalidPageToken()
        if billing_done and tasks_done:
            raise InvalidPageToken()  # never issued: the last page has no token
        return _Cursor(str(billing), bool(billing_done), str(tasks), bool(tasks_done))


async def _nothing_billing() -> Page[bv.AccountActivity]:
    return Page((), "")


async def _nothing_tasks() -> Page[tv.Task]:
    return Page((), "")


class UserTimeline:
    """``GET /v1/admin/users/{id}/timeline``: merges billing's and tasks' listings."""

    def __init__(self, billing: BillingGateway, tasks: TasksGateway) -> None:
        self._billing, self._tasks = billing, tasks

    async def __call__(self, caller: Caller, user_id: str, page: PageRequest) -> Page[TimelineItem]:
        cursor = _Cursor.decode(page.page_token)
        size = page.page_size
        billing_page, tasks_page = await asyncio.gather(
            _nothing_billing()
            if cursor.billing_done
            else self._billing.list_account_activity(
                caller, user_id, PageRequest(size, cursor.billing)
            ),
            _nothing_tasks()
            if cursor.tasks_done
            else self._tasks.list_all_tasks(
                caller, PageRequest(size, cursor.tasks), tv.TaskFilter(user_id=user_id)
            ),
        )
        activity = list(billing_page.items)
        tasks = list(tasks_page.items)
        if len(billing_page.item_page_tokens) != len(activity) or len(
            tasks_page.item_page_tokens
        ) != len(tasks):
            raise RuntimeError("a timeline source gave no per-item page tokens")
        merged: list[TimelineItem] = []
        b = t = 0
        while len(merged) < size and (b < len(activity) or t < len(tasks)):
            take_billing = t >= len(tasks) or (
                b < len(activity) and (activity[b].at or _NEVER) >= (tasks[t].created_at or _NEVER)
            )
            if take_billing:
                a = activity[b]
                merged.append(TimelineItem(id=a.id, at=a.at, activity=a))
                b += 1
            else:
                task = tasks[t]
                merged.append(TimelineItem(id=f"task:{task.id}", at=task.created_at, task=task))
                t += 1
        after = _Cursor(
            billing=billing_page.item_page_tokens[b - 1] if b else cursor.billing,
            billing_done=cursor.billing_done
            or (b == len(activity) and not billing_page.next_page_token),
            tasks=tasks_page.item_page_tokens[t - 1] if t else cursor.tasks,
            tasks_done=cursor.tasks_done or (t == len(tasks) and not tasks_page.next_page_token),
        )
        token = "" if after.billing_done and after.tasks_done else after.encode()
        return Page(merged, token)

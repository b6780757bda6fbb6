"""The admin console's timeline of one user: billing's account activity (ledger entries, payments,
refunds) and the user's tasks in one list, newest first.

Each source pages on its own keyset — billing on (time, kind, id), tasks on (created_at, id) —
and gives every item the page token that continues right after it. A timeline page asks each
source for up to ``page_size`` items from its cursor, merges the two ordered lists by time (at
the same instant billing's entry first) and keeps the first ``page_size``. Every item of a source
that was not kept is older than the last kept item of another source or comes after the last
kept one of its own, so the next page starts, per source, right after the last item it kept: the
gateway's page token is the sources' tokens (plus whether each source is exhausted),
encoded with ``atelier_ports.paging``. No item is skipped or shown twice, whatever arrives
meanwhile (new entries are newer than every cursor).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from atelier_gateway.application import billing_views as bv
from atelier_gateway.application import task_views as tv
from atelier_gateway.application.calls import Caller, Page, PageRequest
from atelier_gateway.application.ports import BillingGateway, TasksGateway
from atelier_ports.paging import InvalidPageToken, decode_page_token, encode_page_token

TIMELINE_PAGE = "gw.timeline"
_NEVER = datetime.min.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class TimelineItem:
    """One timeline entry: exactly one of ``activity`` (billing), ``task`` and ``decision``
    (a content moderation decision) is set."""

    id: str
    at: datetime | None
    activity: bv.AccountActivity | None = None
    task: tv.Task | None = None
    decision: tv.ModerationDecision | None = None


# The sources, in the order they win a tie: billing, tasks, moderation decisions.
_SOURCES = 3


@dataclass(frozen=True, slots=True)
class _Cursor:
    """Per source: the token that continues right after its last shown item, and whether it
    has nothing more."""

    tokens: tuple[str, ...] = ("",) * _SOURCES
    done: tuple[bool, ...] = (False,) * _SOURCES

    def encode(self) -> str:
        parts: list[str | int] = []
        for token, done in zip(self.tokens, self.done, strict=True):
            parts += [token, int(done)]
        return encode_page_token(TIMELINE_PAGE, *parts)

    @staticmethod
    def decode(token: str) -> _Cursor:
        if not token:
            return _Cursor()
        values = decode_page_token(token, TIMELINE_PAGE, (str, int) * _SOURCES)
        tokens = tuple(str(v) for v in values[0::2])
        flags = values[1::2]
        if any(flag not in (0, 1) for flag in flags):
            raise InvalidPageToken()
        if all(flags):
            raise InvalidPageToken()  # never issued: the last page has no token
        return _Cursor(tokens, tuple(bool(flag) for flag in flags))


async def _nothing() -> Page[Any]:
    return Page((), "")


class UserTimeline:
    """``GET /v1/admin/users/{id}/timeline``: merges billing's, tasks' and moderation's
    listings."""

    def __init__(self, billing: BillingGateway, tasks: TasksGateway) -> None:
        self._billing, self._tasks = billing, tasks

    async def __call__(self, caller: Caller, user_id: str, page: PageRequest) -> Page[TimelineItem]:
        cursor = _Cursor.decode(page.page_token)
        size = page.page_size

        def ask(i: int) -> Awaitable[Page[Any]]:
            if cursor.done[i]:
                return _nothing()
            request = PageRequest(size, cursor.tokens[i])
            if i == 0:
                return self._billing.list_account_activity(caller, user_id, request)
            if i == 1:
                return self._tasks.list_all_tasks(caller, request, tv.TaskFilter(user_id=user_id))
            return self._tasks.list_moderation_decisions(
                caller, request, tv.DecisionFilter(user_id=user_id)
            )

        pages: list[Page[Any]] = list(await asyncio.gather(*(ask(i) for i in range(_SOURCES))))
        items = [[_item(i, x) for x in p.items] for i, p in enumerate(pages)]
        for p, source in zip(pages, items, strict=True):
            if len(p.item_page_tokens) != len(source):
                raise RuntimeError("a timeline source gave no per-item page tokens")
        taken = [0] * _SOURCES
        merged: list[TimelineItem] = []
        while len(merged) < size:
            heads = [i for i in range(_SOURCES) if taken[i] < len(items[i])]
            if not heads:
                break
            # The newest head; on a tie the earlier source (billing, then tasks).
            best = max(heads, key=lambda i: (items[i][taken[i]].at or _NEVER, -i))
            merged.append(items[best][taken[best]])
            taken[best] += 1
        after = _Cursor(
            tokens=tuple(
                pages[i].item_page_tokens[taken[i] - 1] if taken[i] else cursor.tokens[i]
                for i in range(_SOURCES)
            ),
            done=tuple(
                cursor.done[i] or (taken[i] == len(items[i]) and not pages[i].next_page_token)
                for i in range(_SOURCES)
            ),
        )
        token = "" if all(after.done) else after.encode()
        return Page(merged, token)


def _item(source: int, x: Any) -> TimelineItem:
    if source == 0:
        assert isinstance(x, bv.AccountActivity)
        return TimelineItem(id=x.id, at=x.at, activity=x)
    if source == 1:
        assert isinstance(x, tv.Task)
        return TimelineItem(id=f"task:{x.id}", at=x.created_at, task=x)
    assert isinstance(x, tv.ModerationDecision)
    return TimelineItem(id=f"moderation:{x.id}", at=x.created_at, decision=x)

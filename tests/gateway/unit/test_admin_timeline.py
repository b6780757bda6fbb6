"""The admin timeline merges billing's activity and the user's tasks page by page: whatever the
page size, a walk sees every entry once, newest first, and ties go to billing first."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from atelier_gateway.application import billing_views as bv
from atelier_gateway.application import task_views as tv
from atelier_gateway.application.admin_timeline import TimelineItem, UserTimeline
from atelier_gateway.application.calls import Caller, Page, PageRequest
from atelier_ports.paging import InvalidPageToken, encode_page_token
from tests.gateway.fakes import FakeBillingGateway, FakeTasksGateway

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
ADMIN = Caller(user_id="adm", role="admin")


def _keyset_page(ids: list[str], page: PageRequest) -> tuple[list[int], str]:
    """Positions of the next page of ``ids`` after the token (the id of the last one shown)."""
    start = ids.index(page.page_token) + 1 if page.page_token else 0
    picked = list(range(start, min(start + page.page_size, len(ids))))
    more = start + page.page_size < len(ids)
    return picked, ids[picked[-1]] if more and picked else ""


class ActivitySource(FakeBillingGateway):
    def __init__(self, entries: list[bv.AccountActivity]) -> None:
        super().__init__()
        self.entries = entries
        self.asked: list[PageRequest] = []

    async def list_account_activity(
        self, caller: Caller, user_id: str, page: PageRequest
    ) -> Page[bv.AccountActivity]:
        self.asked.append(page)
        picked, token = _keyset_page([e.page_token for e in self.entries], page)
        items = [self.entries[i] for i in picked]
        return Page(items, token, [e.page_token for e in items])


class TaskSource(FakeTasksGateway):
    def __init__(self, tasks: list[tv.Task]) -> None:
        super().__init__()
        self.listed = tasks
        self.asked: list[PageRequest] = []

    async def list_all_tasks(
        self, caller: Caller, page: PageRequest, where: tv.TaskFilter
    ) -> Page[tv.Task]:
        assert where.user_id == "u1"
        self.asked.append(page)
        picked, token = _keyset_page([f"after:{t.id}" for t in self.listed], page)
        items = [self.listed[i] for i in picked]
        return Page(items, token, [f"after:{t.id}" for t in items])


def activity(n: int, minutes: int) -> bv.AccountActivity:
    return bv.AccountActivity(
        id=f"ledger:{n}",
        kind="ledger",
        at=T0 - timedelta(minutes=minutes),
        ledger_entry=bv.LedgerEntry(
            id=str(n),
            kind="grant",
            amount=1,
            held_change=0,
            balance_after=n,
            reference="",
            reason="",
            created_at=None,
        ),
        order=None,
        cause="",
        cause_id="",
        page_token=f"after:ledger:{n}",
    )


def task(n: int, minutes: int) -> tv.Task:
    return tv.Task(
        id=f"tsk_{n}",
        type="basic_clean",
        status="succeeded",
        params={},
        input_upload_ids=(),
        cost=1,
        attempts=1,
        error=None,
        error_message=None,
        images=(),
        created_at=T0 - timedelta(minutes=minutes),
        updated_at=None,
        started_at=None,
        finished_at=None,
        deadline_at=None,
        user_id="u1",
    )


def walk(timeline: UserTimeline, size: int) -> list[TimelineItem]:
    seen: list[TimelineItem] = []
    token = ""
    for _ in range(100):
        page = asyncio.run(timeline(ADMIN, "u1", PageRequest(size, token)))
        assert len(page.items) <= size
        seen += page.items
        if not page.next_page_token:
            return seen
        token = page.next_page_token
    raise AssertionError("the timeline never ended")


# Minutes before T0: billing at 0, 2, 2, 5, 9, 10; tasks at 1, 2, 3, 4, 11.
BILLING = [activity(6, 0), activity(5, 2), activity(4, 2), activity(3, 5), activity(2, 9)]
BILLING.append(activity(1, 10))
TASKS = [task(5, 1), task(4, 2), task(3, 3), task(2, 4), task(1, 11)]
EXPECTED = [
    "ledger:6",
    "task:tsk_5",
    "ledger:5",
    "ledger:4",
    "task:tsk_4",  # at the same instant as ledger:5 and ledger:4: billing first
    "task:tsk_3",
    "task:tsk_2",
    "ledger:3",
    "ledger:2",
    "ledger:1",
    "task:tsk_1",
]


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 7, 11, 20])
def test_every_page_size_walks_the_same_merged_timeline(size: int) -> None:
    timeline = UserTimeline(ActivitySource(BILLING), TaskSource(TASKS))
    assert [i.id for i in walk(timeline, size)] == EXPECTED


def test_a_source_that_is_exhausted_is_not_asked_again() -> None:
    billing, tasks = ActivitySource(BILLING[:1]), TaskSource(TASKS)
    items = walk(UserTimeline(billing, tasks), 2)
    assert [i.id for i in items] == [
        "ledger:6",
        "task:tsk_5",
        *[f"task:tsk_{n}" for n in (4, 3, 2, 1)],
    ]
    assert len(billing.asked) == 1  # its one entry was shown on the first page
    assert len(tasks.asked) == 3


def test_an_empty_timeline_is_one_empty_page() -> None:
    page = asyncio.run(
        UserTimeline(ActivitySource([]), TaskSource([]))(ADMIN, "u1", PageRequest(5))
    )
    assert (list(page.items), page.next_page_token) == ([], "")


@pytest.mark.parametrize(
    "token",
    [
        "not a token",
        encode_page_token("gateway.admin_users", 5),
        encode_page_token("gw.timeline", "", 2, "", 0),
        encode_page_token("gw.timeline", "", 1, "", 1),
        encode_page_token("gw.timeline", 1, 0, "", 0),
    ],
)
def test_a_foreign_or_forged_token_is_refused(token: str) -> None:
    timeline = UserTimeline(ActivitySource(BILLING), TaskSource(TASKS))
    with pytest.raises(InvalidPageToken):
        asyncio.run(timeline(ADMIN, "u1", PageRequest(5, token)))


class DecisionSource(TaskSource):
    def __init__(self, tasks: list[tv.Task], decisions: list[tv.ModerationDecision]) -> None:
        super().__init__(tasks)
        self.listed_decisions = decisions
        self.decisions_asked: list[PageRequest] = []

    async def list_moderation_decisions(
        self, caller: Caller, page: PageRequest, where: tv.DecisionFilter
    ) -> Page[tv.ModerationDecision]:
        assert where.user_id == "u1" and where.verdict is None
        self.decisions_asked.append(page)
        ids = [f"after:{d.id}" for d in self.listed_decisions]
        picked, token = _keyset_page(ids, page)
        items = [self.listed_decisions[i] for i in picked]
        return Page(items, token, [f"after:{d.id}" for d in items])


def decision(n: int, minutes: int, task_id: str | None) -> tv.ModerationDecision:
    return tv.ModerationDecision(
        id=f"mod_{n}",
        task_id=task_id,
        user_id="u1",
        subject="prompt",
        verdict="allowed",
        labels=(),
        provider="local",
        request_id=None,
        created_at=T0 - timedelta(minutes=minutes),
    )


# Decisions at 1 (with tsk_5: after the task on a tie), 6 and 12 minutes before T0.
DECISIONS = [decision(3, 1, "tsk_5"), decision(2, 6, None), decision(1, 12, "tsk_1")]
EXPECTED_WITH_DECISIONS = [
    "ledger:6",
    "task:tsk_5",
    "moderation:mod_3",  # the same instant as its task: billing, then tasks, then decisions
    "ledger:5",
    "ledger:4",
    "task:tsk_4",
    "task:tsk_3",
    "task:tsk_2",
    "ledger:3",
    "moderation:mod_2",
    "ledger:2",
    "ledger:1",
    "task:tsk_1",
    "moderation:mod_1",
]


@pytest.mark.parametrize("size", [1, 2, 3, 5, 14, 20])
def test_moderation_decisions_merge_into_the_timeline(size: int) -> None:
    timeline = UserTimeline(ActivitySource(BILLING), DecisionSource(TASKS, DECISIONS))
    items = walk(timeline, size)
    assert [i.id for i in items] == EXPECTED_WITH_DECISIONS
    linked = [i.decision for i in items if i.decision is not None]
    assert [d.task_id for d in linked] == ["tsk_5", None, "tsk_1"]

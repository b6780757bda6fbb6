"""The admin's side of content moderation: the decisions, newest first, and overturning one.

**The overturn rule.** Only a rejection can be overturned, once (a repeat answers the decision as
it stands). Overturning records who and when. If the refusal failed a task (``CONTENT_REJECTED``),
the task is **re-run at no charge**: a new task for the same user with the same type, parameters
and input, cost 0 and no hold (a task that costs nothing holds nothing), request id
``rerun:<original task id>`` (so one re-run per task, whatever the number of overturns or
retries), linked from the decision (``rerun_task_id``). Re-opening the failed original was not
chosen: its hold is already released and its events ended; a new task keeps every existing rule.
The content the admin vouched for is not asked about again for the re-run: an allowed decision
by ``admin`` is recorded for the re-run with the refused content's sha256 (and those the
original carried from earlier overturns), so the dispatcher skips exactly that content; every
other check still runs (a re-run's new results are checked). Overturning a refused prompt
records the overturn only: no task was created, nothing is re-run (the user may send it again;
it is checked again).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from atelier_ports.clock import Clock
from atelier_ports.ids import IdGenerator
from atelier_tasks.application.config import TasksConfig
from atelier_tasks.application.ports import TaskEventHub, TasksUnitOfWorkFactory
from atelier_tasks.application.ports.decisions import ADMIN, DecisionFilter, ModerationRecord
from atelier_tasks.application.ports.moderation import Verdict
from atelier_tasks.application.views import encode_cursor, requested_page
from atelier_tasks.domain.errors import (
    AdminOnly,
    DecisionNotFound,
    DecisionNotOverturnable,
)
from atelier_tasks.domain.model import ErrorReason, Task, TaskStatus

DECISIONS_PAGE = "tasks.v1.moderation"


@dataclass(frozen=True, slots=True)
class ListDecisionsQuery:
    caller_is_admin: bool
    page_size: int
    page_token: str
    verdict: Verdict | None = None
    user_id: str | None = None


@dataclass(frozen=True, slots=True)
class DecisionsPage:
    decisions: list[ModerationRecord]
    next_page_token: str
    # item_tokens[i] continues the listing right after decisions[i] (the admin timeline).
    item_tokens: list[str]


class ListDecisions:
    def __init__(self, *, uow: TasksUnitOfWorkFactory, config: TasksConfig) -> None:
        self.uow = uow
        self.config = config

    def __call__(self, query: ListDecisionsQuery) -> DecisionsPage:
        if not query.caller_is_admin:
            raise AdminOnly("moderation decisions are for admins")
        page = requested_page(self.config, query.page_size, query.page_token, DECISIONS_PAGE)
        where = DecisionFilter(verdict=query.verdict, user_id=query.user_id)
        with self.uow(read_only=True) as uow:
            found = uow.moderation.list(where, page.size + 1, page.after)
        decisions = found[: page.size]
        tokens = [encode_cursor(DECISIONS_PAGE, r.created_at, r.id) for r in decisions]
        return DecisionsPage(decisions, tokens[-1] if len(found) > page.size else "", tokens)


@dataclass(frozen=True, slots=True)
class OverturnCommand:
    caller_is_admin: bool
    admin_id: str
    decision_id: str


class OverturnDecision:
    def __init__(
        self,
        *,
        uow: TasksUnitOfWorkFactory,
        hub: TaskEventHub,
        clock: Clock,
        ids: IdGenerator,
        config: TasksConfig,
    ) -> None:
        self.uow = uow
        self.hub = hub
        self.clock = clock
        self.ids = ids
        self.config = config

    def __call__(self, command: OverturnCommand) -> ModerationRecord:
        if not command.caller_is_admin:
            raise AdminOnly("overturning a moderation decision needs the admin role")
        with self.uow(read_only=True) as uow:
            record = uow.moderation.get(command.decision_id) if command.decision_id else None
            original = uow.tasks.get(record.task_id) if record and record.task_id else None
            carried = uow.moderation.of_task(original.id) if original else []
        if record is None:
            raise DecisionNotFound(f"moderation decision {command.decision_id!r} not found")
        if not record.rejected:
            raise DecisionNotOverturnable("only a rejection can be overturned")
        if record.overturned_at is not None:
            return record  # a repeat: the overturn stands as it was made
        now = self.clock.now()
        rerun = self._rerun_of(original, now)
        with self.uow() as uow:
            rerun_id = None
            if rerun is not None:
                stored = uow.tasks.add(rerun)  # a repeat of rerun:<task> answers the first
                rerun_id = stored.id
                vouched = [self._vouch(record, stored.id, now)]
                if stored.id == rerun.id:  # vouches the original carried from earlier overturns
                    vouched += [
                        self._vouch(r, stored.id, now)
                        for r in carried
                        if r.provider == ADMIN and r.verdict is Verdict.ALLOWED
                    ]
                uow.moderation.add(vouched)
            if not uow.moderation.overturn(record.id, now, command.admin_id, rerun_id):
                uow.rollback()  # someone overturned it first: theirs stands
            else:
                uow.commit()
        if rerun_id is not None:
            self.hub.publish(rerun_id)
        with self.uow(read_only=True) as uow:
            done = uow.moderation.get(record.id)
        assert done is not None
        return done

    def _rerun_of(self, original: Task | None, now: datetime) -> Task | None:
        """The free re-run of a task this refusal failed (None: nothing to re-run)."""
        if (
            original is None
            or original.status is not TaskStatus.FAILED
            or original.error_reason != ErrorReason.CONTENT_REJECTED
        ):
            return None
        task = Task.create(
            task_id=self.ids.new_id("task"),
            user_id=original.user_id,
            task_type=original.type,
            params=dict(original.params),
            input_keys=original.input_keys,
            cost=0,
            provider=original.provider,
            now=now,
            timeout=self.config.timeout,
            request_id=f"rerun:{original.id}",
        )
        task.hold_placed(now)  # it costs nothing: there is nothing to hold
        return task

    def _vouch(self, vouched: ModerationRecord, task_id: str, now: datetime) -> ModerationRecord:
        """An allowed decision by the admin for the re-run: this content is not asked again."""
        return replace(
            vouched,
            id=self.ids.new_id("mod"),
            task_id=task_id,
            verdict=Verdict.ALLOWED,
            labels=(),
            provider=ADMIN,
            request_id=vouched.id if vouched.provider != ADMIN else vouched.request_id,
            created_at=now,
            overturned_at=None,
            overturned_by=None,
            rerun_task_id=None,
        )

"""The saga's hold: place it in billing within the caller's time, or abandon the task."""

from __future__ import annotations

import logging
from datetime import datetime

from atelier_ports.clock import Clock
from atelier_tasks.application.config import TasksConfig
from atelier_tasks.application.ports import BillingClient
from atelier_tasks.application.saga.settlement import Settlement
from atelier_tasks.application.saga.writes import TaskWriter
from atelier_tasks.domain.errors import (
    BillingRefused,
    BillingUnavailable,
    InsufficientCredits,
    TaskNotFound,
)
from atelier_tasks.domain.model import ErrorReason, HoldState, Task

log = logging.getLogger("atelier.tasks")


class CreateAbandoned(BillingUnavailable):
    """CreateTask gave up before the hold was confirmed; the task will never run."""

    def __init__(self, why: str) -> None:
        super().__init__(f"{why}; nothing was charged and nothing will run — retry later")


class HoldPlacement:
    def __init__(
        self,
        *,
        writer: TaskWriter,
        settlement: Settlement,
        billing: BillingClient,
        clock: Clock,
        config: TasksConfig,
    ) -> None:
        self.writer = writer
        self.settlement = settlement
        self.billing = billing
        self.clock = clock
        self.config = config

    def place_hold(self, task: Task, respond_by: datetime) -> Task:
        """For a task still ``placing``: the hold, then ``held``; idempotent by the task id.

        Returns the task once its hold is confirmed (or it was cancelled meanwhile); raises
        InsufficientCredits / BillingRefused (the task is deleted) or CreateAbandoned (the task
        is failed and can never run).
        """
        if task.hold_state is not HoldState.PLACING:
            return task
        if task.abandoned:
            raise CreateAbandoned("this request was given up earlier")
        margin = self.config.create_margin.total_seconds()
        budget = self._seconds_left(respond_by) - margin
        if budget <= 0:
            return self.abandon(task, "no time left to place the credit hold")
        try:
            if task.cost > 0:  # a task that costs nothing holds nothing
                self.billing.hold(
                    task.user_id, task.id, task.cost, f"task:{task.id}", budget=budget
                )
        except (InsufficientCredits, BillingRefused):
            self.writer.delete(task)
            raise
        except BillingUnavailable:
            log.warning("hold for %s in doubt: the task is abandoned and released", task.id)
            return self.abandon(task, "billing is unavailable")
        if self._seconds_left(respond_by) < margin:
            # Held, but too late to answer the caller with it: the caller will see an error, so
            # the task must not run. Settlement releases the hold.
            return self.abandon(task, "the credit hold took too long")

        def confirm(t: Task) -> bool:
            if t.abandoned:  # the sweep or a retry gave up on it first
                raise CreateAbandoned("billing did not confirm the hold in time")
            t.hold_placed(self.clock.now())
            return True

        placed = self.writer.update(task, confirm)
        if placed is None:
            raise TaskNotFound(f"task {task.id} vanished")
        if placed.needs_settlement:  # cancelled while the hold was being placed
            placed = self.settlement.settle(placed)
        return placed

    def abandon(self, task: Task, why: str, reason: str = ErrorReason.BILLING_UNAVAILABLE) -> Task:
        """Make a task still placing its hold unable to ever run, then raise CreateAbandoned —
        unless someone else confirmed its hold first, in which case that task is the answer."""

        def give_up(t: Task) -> bool:
            if t.hold_state is not HoldState.PLACING or t.is_terminal:
                return False  # placed by a retry (it stands), or given up already
            t.abandon(self.clock.now(), reason, why)
            return True

        latest = self.writer.update(task, give_up)
        if latest is not None and latest.hold_state is not HoldState.PLACING:
            return latest
        raise CreateAbandoned(why)

    def abandon_orphan(self, task: Task) -> bool:
        """A task still placing long after its CreateTask call must have ended (the process
        died) can never run. True if this call abandoned it."""
        try:
            self.abandon(task, "the request was interrupted", ErrorReason.CREATE_INTERRUPTED)
        except CreateAbandoned:
            return True
        return False

    def _seconds_left(self, respond_by: datetime) -> float:
        return (respond_by - self.clock.now()).total_seconds()

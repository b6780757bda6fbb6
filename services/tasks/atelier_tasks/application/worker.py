"""The background worker: it only schedules — finds what is due, leases it, hands it to the saga
(``saga/``), and idles when there is nothing to do.

One pass (``run_once``) does, in order:

1. **orphans** — tasks still placing their hold long after creation lost their CreateTask call
   (its caller got an error): they are abandoned (failed, never run) and released in step 3;
2. **timeouts** — unfinished tasks past their deadline fail with ``TIMEOUT``;
3. **settlement** — terminal tasks with an open hold (or one that may exist) get it captured or
   released, until billing answers;
4. **dispatch** — paid-for tasks are leased (``FOR UPDATE SKIP LOCKED`` on PostgreSQL), marked
   ``processing`` and handed to their provider; synchronous results are stored and settled at once;
   a task whose worker died mid-dispatch is dispatched again once its lease runs out;
5. **poll** — only tasks ``processing`` at a polling (or webhook, as a lost-webhook sweep)
   provider, only when due, with exponential backoff; a terminal result is stored and the provider
   is never asked again.

Transient provider errors are retried up to ``max_attempts`` with backoff. Every write is
version-checked, so a cancel or a timeout racing with a provider result wins cleanly.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from atelier_ports.clock import Clock
from atelier_tasks.application.config import TasksConfig
from atelier_tasks.application.ports import ClaimKind, TasksUnitOfWorkFactory
from atelier_tasks.application.saga import TaskSaga
from atelier_tasks.domain.model import Task

log = logging.getLogger("atelier.tasks.worker")


@dataclass
class PassReport:
    holds: int = 0
    timed_out: int = 0
    settled: int = 0
    dispatched: int = 0
    polled: int = 0

    @property
    def total(self) -> int:
        return self.holds + self.timed_out + self.settled + self.dispatched + self.polled


class TaskWorker:
    def __init__(
        self,
        *,
        saga: TaskSaga,
        uow: TasksUnitOfWorkFactory,
        clock: Clock,
        config: TasksConfig,
        owner: str,
        batch: int = 10,
    ) -> None:
        self.saga = saga
        self.uow = uow
        self.clock = clock
        self.config = config
        self.owner = owner
        self.batch = batch

    def run_once(self) -> PassReport:
        report = PassReport()
        report.holds = self.recover_holds()
        report.timed_out = self.reap_timeouts()
        report.settled = self.settle_open_holds()
        report.dispatched = self.dispatch_due()
        report.polled = self.poll_due()
        return report

    def run_forever(self, stop: threading.Event, idle_seconds: float = 0.5) -> None:
        while not stop.is_set():
            try:
                busy = self.run_once().total > 0
            except Exception:
                log.exception("worker pass failed")
                busy = False
            if not busy:
                stop.wait(idle_seconds)

    # --- the passes ----------------------------------------------------------------------------

    def recover_holds(self) -> int:
        """Tasks still placing their hold ``hold_grace`` after creation lost their CreateTask
        call (its caller got an error): they are abandoned, never run; settlement releases
        whatever billing may hold for them."""
        count = 0
        before = self.clock.now() - self.config.hold_grace
        with self.uow(read_only=True) as uow:
            due = uow.tasks.holds_in_doubt(before, self.batch)
        for task_id in due:
            task = self._get(task_id)
            if task is None:
                continue
            if self.saga.abandon_orphan(task):
                log.info("task %s abandoned: its CreateTask call never finished", task_id)
            count += 1
        return count

    def reap_timeouts(self) -> int:
        count = 0
        with self.uow(read_only=True) as uow:
            due = uow.tasks.timed_out(self.clock.now(), self.batch)
        for task_id in due:
            task = self._get(task_id)
            if task is None or task.is_terminal:
                continue
            count += self.saga.time_out(task)
        return count

    def settle_open_holds(self) -> int:
        count = 0
        with self.uow(read_only=True) as uow:
            due = uow.tasks.unsettled(self.clock.now(), self.batch)
        for task_id in due:
            task = self._get(task_id)
            # Counted only when done: with billing down the worker idles between attempts
            # instead of asking again at once.
            if task is not None and task.needs_settlement:
                count += not self.saga.settle(task).needs_settlement
        return count

    def dispatch_due(self) -> int:
        now = self.clock.now()
        started: set[str] = set()

        def start(task: Task) -> None:
            # Leasing and the move to processing are one transaction (one commit per task less).
            if self.saga.begin_attempt(task, now):
                started.add(task.id)

        tasks = self._claim(ClaimKind.DISPATCH, now, start)
        for task in tasks:
            self.saga.dispatch(task, started=task.id in started)
        return len(tasks)

    def poll_due(self) -> int:
        now = self.clock.now()
        tasks = self._claim(ClaimKind.POLL, now)
        for task in tasks:
            self.saga.poll(task)
        return len(tasks)

    def _get(self, task_id: str) -> Task | None:
        with self.uow(read_only=True) as uow:
            return uow.tasks.get(task_id)

    def _claim(
        self, kind: ClaimKind, now: datetime, start: Callable[[Task], None] | None = None
    ) -> list[Task]:
        """Lease due tasks to this worker (``start`` applied in the same transaction)."""
        with self.uow() as uow:
            tasks = uow.tasks.claim(
                kind, now, self.owner, now + self.config.lease, self.batch, start
            )
            uow.commit()
        return tasks

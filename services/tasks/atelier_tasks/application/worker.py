"""The background worker: the rest of the create saga, polling, timeouts and recovery.

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
import time
from dataclasses import dataclass

from atelier_ports.errors import ProviderRejected, ProviderUnavailable
from atelier_ports.generation import (
    GenerationRequest,
    GenerationResult,
    GenerationState,
)
from atelier_ports.storage import ObjectNotFound
from atelier_tasks.application.ports import ClaimKind, ConcurrentUpdate
from atelier_tasks.application.results import apply_result, settle
from atelier_tasks.application.service import TaskApplication
from atelier_tasks.domain.model import ErrorReason, Task, TaskType
from atelier_tasks.domain.pose12 import pose12_prompts

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
        app: TaskApplication,
        owner: str,
        *,
        batch: int = 10,
    ) -> None:
        self.app = app
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

    # --- the steps -----------------------------------------------------------------------------

    def recover_holds(self) -> int:
        """Tasks still placing their hold ``hold_grace`` after creation lost their CreateTask
        call (its caller got an error): they are abandoned, never run; settlement releases
        whatever billing may hold for them."""
        app = self.app
        count = 0
        before = app.clock.now() - app.config.hold_grace
        for task_id in app.repository.holds_in_doubt(before, self.batch):
            task = app.repository.get(task_id)
            if task is None:
                continue
            if app.abandon_orphan(task):
                log.info("task %s abandoned: its CreateTask call never finished", task_id)
            count += 1
        return count

    def reap_timeouts(self) -> int:
        app = self.app
        count = 0
        for task_id in app.repository.timed_out(app.clock.now(), self.batch):
            task = app.repository.get(task_id)
            if task is None or task.is_terminal:
                continue
            job = task.provider_job_id
            task.fail(app.clock.now(), ErrorReason.TIMEOUT, "the task did not finish in time")
            try:
                app.repository.save(task)
            except ConcurrentUpdate:
                continue  # changed meanwhile; the next pass looks again
            app.hub.publish(task.id)
            if job:
                self._cancel_at_provider(task, job)
            settle(app, task)
            count += 1
        return count

    def settle_open_holds(self) -> int:
        app = self.app
        count = 0
        for task_id in app.repository.unsettled(app.clock.now(), self.batch):
            task = app.repository.get(task_id)
            # Counted only when done: with billing down the worker idles between attempts
            # instead of asking again at once.
            if task is not None and task.needs_settlement:
                count += not settle(app, task).needs_settlement
        return count

    def dispatch_due(self) -> int:
        app = self.app
        now = app.clock.now()
        started: set[str] = set()

        def start(task: Task) -> None:
            # Leasing and the move to processing are one transaction (one commit per task less).
            if task.provider in app.providers and task.attempts < app.config.max_attempts:
                task.start_attempt(now)
                started.add(task.id)

        tasks = app.repository.claim(
            ClaimKind.DISPATCH, now, self.owner, now + app.config.lease, self.batch, start
        )
        for task in tasks:
            if task.id in started:
                app.hub.publish(task.id)
            self.dispatch(task, started=task.id in started)
        return len(tasks)

    def poll_due(self) -> int:
        app = self.app
        now = app.clock.now()
        tasks = app.repository.claim(
            ClaimKind.POLL, now, self.owner, now + app.config.lease, self.batch
        )
        for task in tasks:
            self.poll(task)
        return len(tasks)

    # --- one task ------------------------------------------------------------------------------

    def dispatch(self, task: Task, *, started: bool = False) -> None:
        """Hand a leased task to its provider (``started``: already moved to processing)."""
        app = self.app
        provider = app.providers.get(task.provider)
        if provider is None:
            self._fail(task, ErrorReason.PROVIDER_REJECTED, f"no provider {task.provider!r}")
            return
        if not started:
            if task.attempts >= app.config.max_attempts:
                message = task.error_message or "no result"
                self._fail(task, ErrorReason.RETRIES_EXHAUSTED, message)
                return
            task.start_attempt(app.clock.now())
            try:
                app.repository.save(task)
            except ConcurrentUpdate:
                return
            app.hub.publish(task.id)
        try:
            inputs = [app.storage.get(key) for key in task.input_keys]
        except ObjectNotFound:
            self._fail(task, ErrorReason.PROVIDER_REJECTED, "an input image is missing")
            return
        request = GenerationRequest(
            task_id=task.id,
            user_id=task.user_id,
            task_type=task.type.value,
            params=dict(task.params),
            input_keys=task.input_keys,
            inputs=inputs,
            prompt="\n".join(pose12_prompts(task.params))
            if task.type is TaskType.MODEL_POSE12
            else None,
        )
        started_at = time.perf_counter()
        try:
            result = provider.submit(request)
            outcome = result.state.value
        except ProviderUnavailable as exc:
            result = GenerationResult(GenerationState.FAILED, error=str(exc), transient=True)
            outcome = "unavailable"
        except ProviderRejected as exc:
            result = GenerationResult(GenerationState.FAILED, error=str(exc))
            outcome = "rejected"
        seconds = time.perf_counter() - started_at
        app.metrics.provider_call(provider.name, "submit", outcome, seconds)
        apply_result(app, task, result)

    def poll(self, task: Task) -> None:
        app = self.app
        provider = app.providers.get(task.provider)
        if provider is None or task.provider_job_id is None:
            return
        started_at = time.perf_counter()
        try:
            result = provider.poll(task.provider_job_id)
            outcome = result.state.value
        except ProviderUnavailable as exc:
            result = GenerationResult(GenerationState.RUNNING, provider_job_id=None, error=str(exc))
            outcome = "unavailable"
        except ProviderRejected as exc:
            result = GenerationResult(GenerationState.FAILED, error=str(exc))
            outcome = "rejected"
        seconds = time.perf_counter() - started_at
        app.metrics.provider_call(provider.name, "poll", outcome, seconds)
        apply_result(app, task, result)

    def _fail(self, task: Task, reason: str, message: str) -> None:
        task.fail(self.app.clock.now(), reason, message)
        try:
            self.app.repository.save(task)
        except ConcurrentUpdate:
            return
        self.app.hub.publish(task.id)
        settle(self.app, task)

    def _cancel_at_provider(self, task: Task, job: str) -> None:
        provider = self.app.providers.get(task.provider)
        if provider is None:
            return
        try:
            provider.cancel(job)
        except Exception:
            log.warning("provider cancel failed for %s", task.id, exc_info=True)

"""The saga's endings on the billing and provider side: the user's cancel, telling the provider
to stop, and settlement (capture the hold of a succeeded task, release any other's)."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from atelier_ports.clock import Clock
from atelier_tasks.application.config import TasksConfig
from atelier_tasks.application.ports import BillingClient, TaskMetrics
from atelier_tasks.application.ports.generation import GenerationProvider
from atelier_tasks.application.saga.writes import TaskWriter
from atelier_tasks.domain.errors import BillingUnavailable, TaskNotFound
from atelier_tasks.domain.model import HoldState, Task

log = logging.getLogger("atelier.tasks")


class Settlement:
    def __init__(
        self,
        *,
        writer: TaskWriter,
        billing: BillingClient,
        providers: Mapping[str, GenerationProvider],
        clock: Clock,
        config: TasksConfig,
        metrics: TaskMetrics,
    ) -> None:
        self.writer = writer
        self.billing = billing
        self.providers = providers
        self.clock = clock
        self.config = config
        self.metrics = metrics

    def cancel(self, task: Task) -> Task:
        """The user's cancel (TaskNotCancellable once terminal), then the hold's release."""
        job: list[str | None] = [None]

        def cancel(t: Task) -> bool:
            job[0] = t.provider_job_id
            t.cancel(self.clock.now())
            return True

        cancelled = self.writer.update(task, cancel)
        if cancelled is None:
            raise TaskNotFound(f"task {task.id!r} not found")
        self.cancel_at_provider(cancelled, job[0])
        return self.settle(cancelled)

    def cancel_at_provider(self, task: Task, job: str | None) -> None:
        provider = self.providers.get(task.provider)
        if not job or provider is None:
            return
        try:
            provider.cancel(job)
        except Exception:  # best effort: the result is ignored anyway
            log.warning("provider cancel failed for %s", task.id, exc_info=True)

    def settle(self, task: Task) -> Task:
        """Capture the hold of a succeeded task, release any other's.

        Billing calls are idempotent by the task id, so doing this twice (after a crash) is
        harmless. Leaves the task unsettled when billing is down; the worker's sweep tries again.
        """
        while task.needs_settlement:
            held = True
            try:
                if task.cost == 0:
                    pass  # a task that costs nothing holds nothing (an overturn's re-run)
                elif task.settlement_is_capture:
                    self.billing.capture(task.user_id, task.id)
                else:
                    held = self.billing.release(task.user_id, task.id)
            except BillingUnavailable:
                log.warning("settling %s deferred: billing unavailable", task.id)
                return task
            now = self.clock.now()
            if not held and task.hold_state is HoldState.PLACING:
                # No hold under this id. One sent before the saga gave up may still land, so
                # the answer is final only once no placement can arrive any more.
                final_at = (task.finished_at or now) + self.config.hold_grace
                if not task.abandoned:  # cancelled meanwhile: its CreateTask may still place it
                    final_at = max(final_at, task.created_at + self.config.create_budget)
                if now < final_at:
                    task.release_later(now, final_at)
                    self.writer.commit(task)
                    return task
            task.settled(now)
            if not self.writer.commit(task):
                fresh = self.writer.reread(task)
                if fresh is None:
                    return task
                task = fresh
                continue
            self._finished(task)
        return task

    def _finished(self, task: Task) -> None:
        self.metrics.task_finished(task.type.value, task.status.value, task.error_reason)
        log.info(
            "task finished",
            extra={
                "fields": {
                    "task_id": task.id,
                    "user_id": task.user_id,
                    "type": task.type.value,
                    "status": task.status.value,
                    "error_reason": task.error_reason,
                    "attempts": task.attempts,
                    "provider": task.provider,
                    "hold": task.hold_state.value,
                    "cost": task.cost,
                }
            },
        )

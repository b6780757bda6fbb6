"""The task saga: hold → dispatch → result → capture/release, and the one write step.

Every change to a stored task goes through :meth:`TaskSaga.commit` (save, version-checked; on
success wake watchers) or :meth:`TaskSaga.update` (the same, re-reading the task and applying the
change again when someone else wrote first). Whoever commits first decides; the others answer
by what was committed.

Steps (the create use case persists the task first, ``create_task.py``):

- :meth:`place_hold` — the hold in billing (idempotent by the task id) within the caller's time;
  only this step marks it ``held``. Billing down or too slow: :meth:`abandon` (the task ends
  failed and never runs; settlement releases whatever billing may hold). A definite "no": the
  task is deleted.
- :meth:`begin_attempt` / :meth:`dispatch` / :meth:`poll` — hand a paid-for task to its provider
  and ask again when due; :meth:`apply_result` records the answer (store outputs, retry with
  backoff, or fail).
- :meth:`fail`, :meth:`time_out`, :meth:`cancel` — the other endings.
- :meth:`settle` — capture the hold of a succeeded task, release any other's.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime

from atelier_ports.clock import Clock
from atelier_tasks.application.config import TasksConfig
from atelier_tasks.application.outputs import OutputStore
from atelier_tasks.application.ports import (
    BillingClient,
    ConcurrentUpdate,
    ImageTools,
    NoMetrics,
    TaskEventHub,
    TaskMetrics,
    TasksUnitOfWorkFactory,
)
from atelier_tasks.application.ports.generation import (
    GenerationProvider,
    GenerationRequest,
    GenerationResult,
    GenerationState,
    ProviderStyle,
)
from atelier_tasks.application.ports.storage import ObjectNotFound, ObjectStorage
from atelier_tasks.application.provider_calls import timed_call
from atelier_tasks.domain.errors import (
    BillingRefused,
    BillingUnavailable,
    InsufficientCredits,
    TaskNotFound,
)
from atelier_tasks.domain.model import ErrorReason, HoldState, ResultImage, Task
from atelier_tasks.domain.task_types import spec_of

log = logging.getLogger("atelier.tasks")


class CreateAbandoned(BillingUnavailable):
    """CreateTask gave up before the hold was confirmed; the task will never run."""

    def __init__(self, why: str) -> None:
        super().__init__(f"{why}; nothing was charged and nothing will run — retry later")


class TaskSaga:
    def __init__(
        self,
        *,
        uow: TasksUnitOfWorkFactory,
        billing: BillingClient,
        providers: Mapping[str, GenerationProvider],
        storage: ObjectStorage,
        images: ImageTools,
        hub: TaskEventHub,
        clock: Clock,
        config: TasksConfig,
        metrics: TaskMetrics | None = None,
    ) -> None:
        self.uow = uow
        self.billing = billing
        self.providers = providers
        self.storage = storage
        self.images = images
        self.hub = hub
        self.clock = clock
        self.config = config
        self.metrics: TaskMetrics = metrics or NoMetrics()
        self.outputs = OutputStore(storage=storage, images=images, config=config)

    # --- the one write step -------------------------------------------------------------------

    def commit(self, task: Task, images: Sequence[ResultImage] = ()) -> bool:
        """Save the task's changes (and new images) if nobody wrote it since it was read, then
        wake its watchers. False if someone else wrote first (nothing was saved)."""
        try:
            with self.uow() as uow:
                uow.tasks.save(task, images)
                uow.commit()
        except ConcurrentUpdate:
            return False
        self.hub.publish(task.id)
        return True

    def update(self, task: Task, change: Callable[[Task], bool]) -> Task | None:
        """Apply ``change`` and commit, re-reading and applying it again while others write
        first. ``change`` returns False to write nothing. Returns the task as it now stands
        (committed, or as ``change`` declined it), None if it no longer exists."""
        while True:
            if not change(task):
                return task
            if self.commit(task):
                return task
            fresh = self.reread(task)
            if fresh is None:
                return None
            task = fresh

    def reread(self, task: Task) -> Task | None:
        """The task as stored now (None once deleted)."""
        with self.uow() as uow:
            return uow.tasks.get(task.id)

    # --- the hold -----------------------------------------------------------------------------

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
            self.billing.hold(task.user_id, task.id, task.cost, f"task:{task.id}", budget=budget)
        except (InsufficientCredits, BillingRefused):
            with self.uow() as uow:
                uow.tasks.delete(task.id)
                uow.commit()
            self.hub.publish(task.id)
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

        placed = self.update(task, confirm)
        if placed is None:
            raise TaskNotFound(f"task {task.id} vanished")
        if placed.needs_settlement:  # cancelled while the hold was being placed
            placed = self.settle(placed)
        return placed

    def abandon(self, task: Task, why: str, reason: str = ErrorReason.BILLING_UNAVAILABLE) -> Task:
        """Make a task still placing its hold unable to ever run, then raise CreateAbandoned —
        unless someone else confirmed its hold first, in which case that task is the answer."""

        def give_up(t: Task) -> bool:
            if t.hold_state is not HoldState.PLACING or t.is_terminal:
                return False  # placed by a retry (it stands), or given up already
            t.abandon(self.clock.now(), reason, why)
            return True

        latest = self.update(task, give_up)
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

    # --- the provider -------------------------------------------------------------------------

    def begin_attempt(self, task: Task, now: datetime) -> bool:
        """Move a leased task to its next attempt (inside the claiming transaction); False if
        it cannot run (no such provider, attempts used up): :meth:`dispatch` ends it."""
        if task.provider in self.providers and task.attempts < self.config.max_attempts:
            task.start_attempt(now)
            return True
        return False

    def dispatch(self, task: Task, *, started: bool = False) -> None:
        """Hand a leased task to its provider (``started``: moved to processing by the claim)."""
        if started:
            self.hub.publish(task.id)
        provider = self.providers.get(task.provider)
        if provider is None:
            self.fail(task, ErrorReason.PROVIDER_REJECTED, f"no provider {task.provider!r}")
            return
        if not started:
            if task.attempts >= self.config.max_attempts:
                self.fail(task, ErrorReason.RETRIES_EXHAUSTED, task.error_message or "no result")
                return
            task.start_attempt(self.clock.now())
            if not self.commit(task):
                return
        try:
            inputs = [self.storage.get(key) for key in task.input_keys]
        except ObjectNotFound:
            self.fail(task, ErrorReason.PROVIDER_REJECTED, "an input image is missing")
            return
        request = GenerationRequest(
            task_id=task.id,
            user_id=task.user_id,
            task_type=task.type.value,
            params=dict(task.params),
            input_keys=task.input_keys,
            inputs=inputs,
            prompt=spec_of(task.type).prompt(task.params),
        )
        result = timed_call(
            provider, "submit", lambda: provider.submit(request), self.clock, self.metrics
        )
        self.apply_result(task, result)

    def poll(self, task: Task) -> None:
        provider = self.providers.get(task.provider)
        job = task.provider_job_id
        if provider is None or job is None:
            return
        result = timed_call(provider, "poll", lambda: provider.poll(job), self.clock, self.metrics)
        self.apply_result(task, result)

    def cancel_at_provider(self, task: Task, job: str | None) -> None:
        provider = self.providers.get(task.provider)
        if not job or provider is None:
            return
        try:
            provider.cancel(job)
        except Exception:  # best effort: the result is ignored anyway
            log.warning("provider cancel failed for %s", task.id, exc_info=True)

    # --- results ------------------------------------------------------------------------------

    def apply_result(self, task: Task, result: GenerationResult) -> bool:
        """Record a provider's answer on a processing task; True if the task changed."""
        now = self.clock.now()
        config = self.config
        if result.state is GenerationState.RUNNING:
            provider = self.providers.get(task.provider)
            style = provider.style if provider else ProviderStyle.POLLING
            # Webhook providers report by themselves; polling them is the lost-webhook sweep.
            base = config.webhook_sweep if style is ProviderStyle.WEBHOOK else config.poll_initial
            if task.provider_job_id is None and result.provider_job_id:
                task.running_at_provider(result.provider_job_id, now, now + base)
            else:
                delay = min(base * (2 ** min(task.polls + 1, 10)), max(config.poll_max, base))
                task.polled_still_running(now, now + delay)
            task.release_lease()
            return self.commit(task)
        if result.state is GenerationState.FAILED:
            if result.transient and task.attempts < config.max_attempts:
                backoff = config.retry_backoff * (2 ** max(task.attempts - 1, 0))
                return self._retry(task, now + backoff, result.error or "transient provider error")
            failure = (
                ErrorReason.RETRIES_EXHAUSTED if result.transient else ErrorReason.PROVIDER_FAILED
            )
            return self.fail(task, failure, result.error or "the provider failed")
        try:
            images = self.outputs.store(task, result, self.clock.now())
        except Exception as exc:
            log.exception("storing outputs of %s failed", task.id)
            if task.attempts < config.max_attempts:
                return self._retry(
                    task, now + config.retry_backoff, f"storing outputs failed: {exc}"
                )
            return self.fail(task, ErrorReason.STORAGE_FAILED, "the results could not be stored")
        task.succeed(self.clock.now())
        if not self.commit(task, images):
            self.outputs.discard(
                images
            )  # cancelled or timed out meanwhile: the outputs are not ours
            return False
        self.settle(task)
        return True

    def _retry(self, task: Task, at: datetime, message: str) -> bool:
        task.retry_later(self.clock.now(), at, message)
        task.release_lease()
        return self.commit(task)

    # --- endings ------------------------------------------------------------------------------

    def fail(self, task: Task, reason: str, message: str) -> bool:
        task.fail(self.clock.now(), reason, message)
        if not self.commit(task):
            return False
        self.settle(task)
        return True

    def time_out(self, task: Task) -> bool:
        job = task.provider_job_id
        task.fail(self.clock.now(), ErrorReason.TIMEOUT, "the task did not finish in time")
        if not self.commit(task):
            return False  # changed meanwhile; the next pass looks again
        self.cancel_at_provider(task, job)
        self.settle(task)
        return True

    def cancel(self, task: Task) -> Task:
        """The user's cancel (TaskNotCancellable once terminal), then the hold's release."""
        job: list[str | None] = [None]

        def cancel(t: Task) -> bool:
            job[0] = t.provider_job_id
            t.cancel(self.clock.now())
            return True

        cancelled = self.update(task, cancel)
        if cancelled is None:
            raise TaskNotFound(f"task {task.id!r} not found")
        self.cancel_at_provider(cancelled, job[0])
        return self.settle(cancelled)

    def settle(self, task: Task) -> Task:
        """Capture the hold of a succeeded task, release any other's.

        Billing calls are idempotent by the task id, so doing this twice (after a crash) is
        harmless. Leaves the task unsettled when billing is down; the worker's sweep tries again.
        """
        while task.needs_settlement:
            held = True
            try:
                if task.settlement_is_capture:
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
                    self.commit(task)
                    return task
            task.settled(now)
            if not self.commit(task):
                fresh = self.reread(task)
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

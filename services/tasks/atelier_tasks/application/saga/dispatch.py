"""The saga's provider side: start an attempt, hand the task over, poll, record the answer
(store outputs, retry with backoff, or fail), and time out."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime, timedelta

from atelier_ports.clock import Clock
from atelier_ports.errors import ProviderRejected, ProviderUnavailable
from atelier_tasks.application.config import TasksConfig
from atelier_tasks.application.moderation import ContentChecks, ImageCheck
from atelier_tasks.application.outputs import OutputStore
from atelier_tasks.application.ports import TaskMetrics
from atelier_tasks.application.ports.generation import (
    GenerationProvider,
    GenerationRequest,
    GenerationResult,
    GenerationState,
    ProviderStyle,
)
from atelier_tasks.application.ports.moderation import ModerationSubject
from atelier_tasks.application.ports.storage import ObjectNotFound, ObjectStorage
from atelier_tasks.application.provider_calls import timed_call
from atelier_tasks.application.saga.settlement import Settlement
from atelier_tasks.application.saga.writes import TaskWriter
from atelier_tasks.domain.model import ErrorReason, Task
from atelier_tasks.domain.task_types import spec_of

log = logging.getLogger("atelier.tasks")


class Dispatcher:
    def __init__(
        self,
        *,
        writer: TaskWriter,
        settlement: Settlement,
        providers: Mapping[str, GenerationProvider],
        storage: ObjectStorage,
        outputs: OutputStore,
        clock: Clock,
        config: TasksConfig,
        metrics: TaskMetrics,
        checks: ContentChecks,
    ) -> None:
        self.checks = checks
        self.writer = writer
        self.settlement = settlement
        self.providers = providers
        self.storage = storage
        self.outputs = outputs
        self.clock = clock
        self.config = config
        self.metrics = metrics

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
            self.writer.publish(task)
        provider = self.providers.get(task.provider)
        if provider is None:
            self.fail(task, ErrorReason.PROVIDER_REJECTED, f"no provider {task.provider!r}")
            return
        if not started:
            if task.attempts >= self.config.max_attempts:
                self.fail(task, ErrorReason.RETRIES_EXHAUSTED, task.error_message or "no result")
                return
            task.start_attempt(self.clock.now())
            if not self.writer.commit(task):
                return
        try:
            inputs = [self.storage.get(key) for key in task.input_keys]
        except ObjectNotFound:
            self.fail(task, ErrorReason.PROVIDER_REJECTED, "an input image is missing")
            return
        if self.checks.enabled and inputs:
            checks = [
                ImageCheck(data, key) for key, data in zip(task.input_keys, inputs, strict=True)
            ]
            if not self._moderated(task, ModerationSubject.INPUT_IMAGE, checks, "an input image"):
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

    def apply_result(self, task: Task, result: GenerationResult) -> bool:
        """Record a provider's answer on a processing task; True if the task changed."""
        now = self.clock.now()
        config = self.config
        if result.state is GenerationState.RUNNING:
            provider = self.providers.get(task.provider)
            style = provider.style if provider else ProviderStyle.POLLING
            # Webhook providers report by themselves; polling them is the lost-webhook sweep.
            base = config.webhook_sweep if style is ProviderStyle.WEBHOOK else config.poll_initial
            cap = max(config.poll_max, base)
            if task.provider in config.poll_bounds:  # the provider's own (e.g. RunningHub's)
                base, cap = config.poll_bounds[task.provider]
            if task.provider_job_id is None and result.provider_job_id:
                task.running_at_provider(result.provider_job_id, now, now + base)
            else:
                delay = min(base * (2 ** min(task.polls + 1, 10)), max(cap, base))
                task.polled_still_running(now, now + delay)
            task.release_lease()
            return self.writer.commit(task)
        if result.state is GenerationState.FAILED:
            if result.transient and task.attempts < config.max_attempts:
                backoff = config.retry_backoff * (2 ** max(task.attempts - 1, 0))
                return self._retry(task, now + backoff, result.error or "transient provider error")
            failure = (
                ErrorReason.RETRIES_EXHAUSTED if result.transient else ErrorReason.PROVIDER_FAILED
            )
            return self.fail(task, failure, result.error or "the provider failed")
        expected = spec_of(task.type).outputs
        if len(result.outputs) < max(expected, 1):
            # Fewer images than the type promises is a failure, not a success (hold released).
            return self.fail(
                task,
                ErrorReason.PROVIDER_FAILED,
                f"the provider returned {len(result.outputs)} of {expected} images",
            )
        if self.checks.enabled:
            # Every result before it is stored: a refused image is never stored or served.
            checks = [ImageCheck(output.data) for output in result.outputs]
            if not self._moderated(task, ModerationSubject.RESULT_IMAGE, checks, "a result"):
                return True
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
        if not self.writer.commit(task, images):
            self.outputs.discard(
                images
            )  # cancelled or timed out meanwhile: the outputs are not ours
            return False
        self.settlement.settle(task)
        return True

    def _moderated(
        self, task: Task, subject: ModerationSubject, images: list[ImageCheck], what: str
    ) -> bool:
        """True if every image may be used. Otherwise the task has been failed (refused, or
        the provider refused the request) or set to wait for the moderation provider."""
        try:
            refused = self.checks.check_images(task, subject, images)
        except ProviderUnavailable as exc:
            log.warning("moderation of %s deferred: %s", task.id, exc)
            self._moderation_later(task, f"waiting for content moderation: {exc}")
            return False
        except ProviderRejected as exc:
            log.error("moderation refused the request for %s: %s", task.id, exc)
            self.fail(task, ErrorReason.MODERATION_FAILED, f"{what} could not be checked")
            return False
        if refused is not None:
            self.fail(task, ErrorReason.CONTENT_REJECTED, f"{what} was refused by content review")
            return False
        return True

    def _moderation_later(self, task: Task, message: str) -> bool:
        """Ask the moderation provider again later, backing off (the wait so far, between
        ``retry_backoff`` and ``poll_max``), until the task's deadline: a task at a polling or
        webhook provider polls for its result again, any other is dispatched again (the
        attempt does not count)."""
        now = self.clock.now()
        config = self.config
        waited = now - (task.started_at or now)
        delay = min(max(waited, config.retry_backoff, timedelta(seconds=1)), config.poll_max)
        if task.provider_job_id is not None:
            task.polled_still_running(now, now + delay)
            task.release_lease()
        else:
            task.wait_for_moderation(now, now + delay, message)
        return self.writer.commit(task)

    def poll_soon(self, task: Task) -> bool:
        """A hint (an unsigned webhook) that the provider may be done: the worker polls the task
        at once, if it is still processing and not being polled right now."""
        now = self.clock.now()
        changed = False

        def change(t: Task) -> bool:
            nonlocal changed
            changed = t.poll_soon(now)
            return changed

        self.writer.update(task, change)
        return changed

    def _retry(self, task: Task, at: datetime, message: str) -> bool:
        task.retry_later(self.clock.now(), at, message)
        task.release_lease()
        return self.writer.commit(task)

    def fail(self, task: Task, reason: str, message: str) -> bool:
        task.fail(self.clock.now(), reason, message)
        if not self.writer.commit(task):
            return False
        self.settlement.settle(task)
        return True

    def time_out(self, task: Task) -> bool:
        job = task.provider_job_id
        task.fail(self.clock.now(), ErrorReason.TIMEOUT, "the task did not finish in time")
        if not self.writer.commit(task):
            return False  # changed meanwhile; the next pass looks again
        self.settlement.cancel_at_provider(task, job)
        self.settlement.settle(task)
        return True

"""Recording provider results and settling holds: shared by the worker and notifications."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from atelier_ports.generation import GenerationResult, GenerationState, ProviderStyle
from atelier_tasks.application.ports import ConcurrentUpdate
from atelier_tasks.domain.errors import BillingUnavailable
from atelier_tasks.domain.model import ErrorReason, HoldState, ResultImage, Task

if TYPE_CHECKING:
    from atelier_tasks.application.service import TaskApplication

log = logging.getLogger("atelier.tasks")


def settle(app: TaskApplication, task: Task) -> Task:
    """Saga's last step: capture the hold of a succeeded task, release any other's.

    Billing calls are idempotent by the task id, so doing this twice (after a crash) is harmless.
    Leaves the task unsettled when billing is down; the worker's sweep tries again.
    """
    while task.needs_settlement:
        held = True
        try:
            if task.settlement_is_capture:
                app.billing.capture(task.user_id, task.id)
            else:
                held = app.billing.release(task.user_id, task.id)
        except BillingUnavailable:
            log.warning("settling %s deferred: billing unavailable", task.id)
            return task
        now = app.clock.now()
        if not held and task.hold_state is HoldState.PLACING:
            # No hold under this id. One sent before the saga gave up may still land, so the
            # answer is final only once no placement can arrive any more.
            final_at = (task.finished_at or now) + app.config.hold_grace
            if not task.abandoned:  # cancelled meanwhile: its CreateTask may still be placing it
                final_at = max(final_at, task.created_at + app.config.create_budget)
            if now < final_at:
                task.release_later(now, final_at)
                _save(app, task)
                return task
        task.settled(now)
        try:
            app.repository.save(task)
        except ConcurrentUpdate:
            fresh = app.repository.get(task.id)
            if fresh is None:
                return task
            task = fresh
            continue
        app.metrics.task_finished(task.type.value, task.status.value, task.error_reason)
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
    return task


def apply_result(app: TaskApplication, task: Task, result: GenerationResult) -> bool:
    """Record a provider's answer on a processing task; True if the task changed."""
    now = app.clock.now()
    config = app.config
    provider = app.providers.get(task.provider)
    if result.state is GenerationState.RUNNING:
        style = provider.style if provider else ProviderStyle.POLLING
        # Webhook providers report by themselves; polling them is only the lost-webhook sweep.
        base = config.webhook_sweep if style is ProviderStyle.WEBHOOK else config.poll_initial
        if task.provider_job_id is None and result.provider_job_id:
            task.running_at_provider(result.provider_job_id, now, now + base)
        else:
            delay = min(base * (2 ** min(task.polls + 1, 10)), max(config.poll_max, base))
            task.polled_still_running(now, now + delay)
        task.release_lease()
        return _save(app, task)
    if result.state is GenerationState.FAILED:
        if result.transient and task.attempts < config.max_attempts:
            backoff = config.retry_backoff * (2 ** max(task.attempts - 1, 0))
            task.retry_later(now, now + backoff, result.error or "transient provider error")
            task.release_lease()
            return _save(app, task)
        reason = ErrorReason.RETRIES_EXHAUSTED if result.transient else ErrorReason.PROVIDER_FAILED
        task.fail(now, reason, result.error or "the provider failed")
        if not _save(app, task):
            return False
        settle(app, task)
        return True
    try:
        images = store_outputs(app, task, result)
    except Exception as exc:
        log.exception("storing outputs of %s failed", task.id)
        if task.attempts < config.max_attempts:
            task.retry_later(now, now + config.retry_backoff, f"storing outputs failed: {exc}")
            task.release_lease()
            return _save(app, task)
        task.fail(now, ErrorReason.STORAGE_FAILED, "the results could not be stored")
        if _save(app, task):
            settle(app, task)
            return True
        return False
    task.succeed(app.clock.now())
    if not _save(app, task, images):
        discard(app, images)  # cancelled or timed out meanwhile: the outputs are not ours
        return False
    settle(app, task)
    return True


def store_outputs(app: TaskApplication, task: Task, result: GenerationResult) -> list[ResultImage]:
    now = app.clock.now()
    images: list[ResultImage] = []
    for index, output in enumerate(result.outputs):
        data = output.data
        if data is None:
            if output.source_url is None or app.fetcher is None:
                raise ValueError("output has neither bytes nor a fetchable URL")
            data, _ = app.fetcher.fetch(output.source_url)
        info = app.images.inspect(data)
        ext = info.content_type.split("/")[-1].replace("jpeg", "jpg")
        # Attempt-scoped keys: a retried attempt never overwrites what a user may hold a URL to.
        base = f"{task.user_id}/tasks/{task.id}/a{task.attempts}-{index:02d}"
        stored = app.storage.put(f"{base}.{ext}", data, info.content_type)
        thumb, thumb_type = app.images.thumbnail(data, app.config.thumbnail_side)
        thumb_key = f"{base}.thumb.{thumb_type.split('/')[-1].replace('jpeg', 'jpg')}"
        app.storage.put(thumb_key, thumb, thumb_type)
        images.append(
            ResultImage(
                id=f"img_{hashlib.sha256(base.encode()).hexdigest()[:24]}",
                task_id=task.id,
                user_id=task.user_id,
                task_type=task.type,
                index=index,
                key=stored.key,
                thumbnail_key=thumb_key,
                content_type=info.content_type,
                size=stored.size,
                width=info.width,
                height=info.height,
                sha256=stored.sha256,
                created_at=now,
            )
        )
    return images


def discard(app: TaskApplication, images: Sequence[ResultImage]) -> None:
    for image in images:
        app.storage.delete(image.key)
        app.storage.delete(image.thumbnail_key)


def _save(app: TaskApplication, task: Task, images: Sequence[ResultImage] = ()) -> bool:
    try:
        app.repository.save(task, images)
    except ConcurrentUpdate:
        return False
    app.hub.publish(task.id)
    return True

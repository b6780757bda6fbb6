"""What the tasks use cases are configured with (filled in by the composition root)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from atelier_tasks.domain.model import TaskType
from atelier_tasks.domain.task_types import default_costs

DEFAULT_COSTS: Mapping[TaskType, int] = default_costs()

UPLOAD_CONTENT_TYPES = ("image/jpeg", "image/png", "image/webp")


@dataclass(frozen=True, slots=True)
class TasksConfig:
    costs: Mapping[TaskType, int] = field(default_factory=lambda: dict(DEFAULT_COSTS))
    # Provider name per task type (chosen by market, overridable per type).
    routes: Mapping[TaskType, str] = field(default_factory=lambda: dict.fromkeys(TaskType, "local"))
    timeout: timedelta = timedelta(minutes=10)
    daily_limit: int = 200
    max_attempts: int = 3
    retry_backoff: timedelta = timedelta(seconds=2)
    poll_initial: timedelta = timedelta(seconds=2)
    poll_max: timedelta = timedelta(seconds=60)
    webhook_sweep: timedelta = timedelta(minutes=2)
    # provider → (first poll, longest interval) where it differs from poll_initial / poll_max.
    poll_bounds: Mapping[str, tuple[timedelta, timedelta]] = field(default_factory=dict)
    lease: timedelta = timedelta(minutes=5)
    # How long CreateTask may take at most (less if its caller's deadline is sooner); keep it
    # under the gateway's deadline for the call. ``create_margin`` of it is kept for the final
    # commit and the answer: with less time left the saga gives up instead of committing.
    create_budget: timedelta = timedelta(seconds=10)
    create_margin: timedelta = timedelta(seconds=1)
    # A task still placing its hold this long after it was created lost its CreateTask call
    # (the process died): the sweep fails it. Also how long a hold sent by a saga that gave up
    # may still land in billing. Must exceed ``create_budget`` (plus the billing call timeout).
    hold_grace: timedelta = timedelta(seconds=30)
    url_ttl_seconds: int = 900
    thumbnail_side: int = 256
    upload_max_bytes: int = 15 * 1024 * 1024
    upload_content_types: tuple[str, ...] = UPLOAD_CONTENT_TYPES
    upload_ttl_seconds: int = 600
    # A watcher re-reads its task this often even without a wake-up (changes made by another
    # process on SQLite); with PostgreSQL LISTEN/NOTIFY every change wakes it, and this is only
    # a safety net (bootstrap: WATCH_POLL_NOTIFIED_SECONDS).
    watch_poll_seconds: float = 1.0
    # WatchTaskChanges is offered only where this process's hub hears of every change:
    # PostgreSQL (LISTEN/NOTIFY) or one process alone on its database (bootstrap decides).
    change_feed: bool = True
    # A change-feed follower this many task ids behind is cut off (it must read again).
    change_feed_backlog: int = 10_000
    # Wake-ups gathered before the changed tasks are read (one write wakes the feed twice on
    # PostgreSQL: in process and by NOTIFY); the delay a change adds on its way to followers.
    change_feed_batch_seconds: float = 0.02
    max_page_size: int = 100
    default_page_size: int = 20

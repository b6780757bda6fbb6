"""What content moderation adds to a task, per task type, with the local adapter.

    python -m tests.tasks.bench_moderation [--runs 15]

Two tasks services on fresh SQLite files — MODERATION_ENABLED=true (local adapter: word lists +
NSFW detector) and false — wired by the real composition root with local storage and the local
generator (no delay); billing is the in-memory fake (its calls are not what is measured). For each
task type it times CreateTask (the prompt check) and the worker's pass that runs the task (the
input photo check, the generation, every result's check, storage), and prints the medians with
moderation on and off and the difference. Not a test: figures depend on the machine.
"""

from __future__ import annotations

import argparse
import io
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PIL import Image

from atelier_tasks.adapters.db.migrate import upgrade
from atelier_tasks.application.create_task import CreateTaskCommand
from atelier_tasks.application.ports.moderation import (
    ImageToModerate,
    Moderation,
    ModerationDecision,
)
from atelier_tasks.bootstrap import TasksContainer, build_container, build_moderation
from atelier_tasks.domain.model import TaskStatus, TaskType
from atelier_tasks.settings import TasksSettings
from tests.tasks.fakes import FakeBillingClient

PARAMS: dict[TaskType, dict[str, Any]] = {
    TaskType.TEXT_TO_IMAGE: {"prompt": "a red chair in a sunny room", "width": 1024},
    TaskType.BASIC_CLEAN: {},
    TaskType.MODEL_POSE12: {"scene": "studio", "category": "dress"},
}


def photo() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (1200, 900), (200, 120, 40)).save(buf, "JPEG")
    return buf.getvalue()


class TimedModeration:
    """The real adapter, with the time spent in its checks added up (the robust figure on a
    busy machine: it excludes the rest of the task)."""

    def __init__(self, inner: Moderation) -> None:
        self.inner = inner
        self.seconds = 0.0

    @property
    def name(self) -> str:
        return self.inner.name

    def check_text(self, text: str) -> ModerationDecision:
        started = time.perf_counter()
        try:
            return self.inner.check_text(text)
        finally:
            self.seconds += time.perf_counter() - started

    def check_image(self, image: ImageToModerate) -> ModerationDecision:
        started = time.perf_counter()
        try:
            return self.inner.check_image(image)
        finally:
            self.seconds += time.perf_counter() - started


def container(
    data: Path, enabled: bool
) -> tuple[TasksContainer, FakeBillingClient, TimedModeration | None]:
    billing = FakeBillingClient()
    settings = TasksSettings(
        TASKS_DATABASE_URL=f"sqlite:///{data / 'tasks.db'}",
        ATELIER_DATA_DIR=str(data),
        MODERATION_ENABLED=enabled,
        LOCAL_GENERATOR_DELAY_MS=0,
        TASKS_DAILY_LIMIT=100_000,
    )
    adapter = build_moderation(settings)
    timed_moderation = TimedModeration(adapter) if adapter is not None else None
    app = build_container(settings, billing=billing, moderation=timed_moderation)
    upgrade(app.engine)
    return app, billing, timed_moderation


def timed(do: Callable[[], object]) -> float:
    started = time.perf_counter()
    do()
    return time.perf_counter() - started


def one_task(app: TasksContainer, task_type: TaskType, key: str) -> tuple[float, float]:
    keys = [] if task_type is TaskType.TEXT_TO_IMAGE else [key]
    command = CreateTaskCommand("bench", task_type, PARAMS[task_type], keys)
    started = time.perf_counter()
    task_id = app.use_cases.create_task(command).task.id
    create = time.perf_counter() - started
    run = timed(app.new_worker("bench").run_once)
    with app.uow(read_only=True) as uow:
        task = uow.tasks.get(task_id)
    assert task is not None and task.status is TaskStatus.SUCCEEDED, task
    return create, run


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    key = "bench/uploads/photo.jpg"
    with tempfile.TemporaryDirectory() as tmp:
        apps = {}
        for enabled in (False, True):
            data = Path(tmp) / ("on" if enabled else "off")
            data.mkdir()
            app, billing, timed_moderation = container(data, enabled)
            billing.fund("bench", 10**9)
            app.storage.put(key, photo(), "image/jpeg")
            apps[enabled] = (app, timed_moderation)
        print(f"median of {args.runs} tasks, ms: create off → on | worker run off → on | in checks")
        try:
            for task_type in PARAMS:
                times: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
                checks: list[float] = []
                for n in range(args.runs + 1):  # the first warms up (the model loads on use)
                    for enabled in (False, True):  # interleaved: both see the same load
                        app, timed_moderation = apps[enabled]
                        before = timed_moderation.seconds if timed_moderation else 0.0
                        result = one_task(app, task_type, key)
                        if n:
                            times[enabled].append(result)
                            if timed_moderation is not None:
                                checks.append(timed_moderation.seconds - before)
                (c0, r0), (c1, r1) = (
                    tuple(statistics.median(x[i] for x in times[e]) for i in (0, 1))
                    for e in (False, True)
                )
                print(
                    f"{task_type.value:14} {c0 * 1e3:7.1f} → {c1 * 1e3:7.1f} | "
                    f"{r0 * 1e3:8.1f} → {r1 * 1e3:8.1f} | {statistics.median(checks) * 1e3:7.1f}"
                )
        finally:
            for app, _ in apps.values():
                app.close()


if __name__ == "__main__":
    main()

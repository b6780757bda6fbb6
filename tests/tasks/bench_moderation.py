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
from atelier_tasks.bootstrap import TasksContainer, build_container
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


def container(data: Path, enabled: bool) -> tuple[TasksContainer, FakeBillingClient]:
    billing = FakeBillingClient()
    settings = TasksSettings(
        TASKS_DATABASE_URL=f"sqlite:///{data / 'tasks.db'}",
        ATELIER_DATA_DIR=str(data),
        MODERATION_ENABLED=enabled,
        LOCAL_GENERATOR_DELAY_MS=0,
        TASKS_DAILY_LIMIT=100_000,
    )
    app = build_container(settings, billing=billing)
    upgrade(app.engine)
    return app, billing


def timed(do: Callable[[], object]) -> float:
    started = time.perf_counter()
    do()
    return time.perf_counter() - started


def measure(app: TasksContainer, billing: FakeBillingClient, runs: int) -> dict[str, Any]:
    billing.fund("bench", 10**9)
    key = "bench/uploads/photo.jpg"
    app.storage.put(key, photo(), "image/jpeg")
    worker = app.new_worker("bench")
    out: dict[str, Any] = {}
    for task_type, params in PARAMS.items():
        creates, runs_ = [], []
        for _ in range(runs + 1):  # the first run warms up (the model loads on first use)
            keys = [] if task_type is TaskType.TEXT_TO_IMAGE else [key]
            command = CreateTaskCommand("bench", task_type, params, keys)
            created: list[str] = []
            creates.append(
                timed(lambda c=command: created.append(app.use_cases.create_task(c).task.id))
            )
            runs_.append(timed(worker.run_once))
            with app.uow(read_only=True) as uow:
                task = uow.tasks.get(created[0])
            assert task is not None and task.status is TaskStatus.SUCCEEDED, task
        out[task_type.value] = (statistics.median(creates[1:]), statistics.median(runs_[1:]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = {}
        for enabled in (False, True):
            data = Path(tmp) / ("on" if enabled else "off")
            data.mkdir()
            app, billing = container(data, enabled)
            try:
                results[enabled] = measure(app, billing, args.runs)
            finally:
                app.close()
    print(f"median of {args.runs} runs, ms     create (off → on)       worker run (off → on)")
    for task_type in PARAMS:
        (c0, r0), (c1, r1) = results[False][task_type.value], results[True][task_type.value]
        print(
            f"{task_type.value:14} {c0 * 1e3:8.1f} → {c1 * 1e3:7.1f} (+{(c1 - c0) * 1e3:6.1f})"
            f"   {r0 * 1e3:8.1f} → {r1 * 1e3:7.1f} (+{(r1 - r0) * 1e3:6.1f})"
        )


if __name__ == "__main__":
    main()

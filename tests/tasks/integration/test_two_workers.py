"""Several workers (separate engines, as separate replicas would have) share the queue through
row leasing: every task is dispatched exactly once."""

from __future__ import annotations

import threading
from collections import Counter

from atelier_tasks.adapters.local_generation import LocalGenerationProvider
from atelier_tasks.application.create_task import CreateTaskCommand
from atelier_tasks.application.ports.generation import GenerationRequest, GenerationResult
from atelier_tasks.bootstrap import TasksContainer
from atelier_tasks.domain.model import HoldState, TaskStatus, TaskType
from tests.tasks.fakes import FakeBillingClient
from tests.tasks.harness import MakeTasks


class SharedCountingProvider(LocalGenerationProvider):
    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.Lock()
        self.submitted: Counter[str] = Counter()
        self.by_worker: Counter[str] = Counter()

    def submit(self, request: GenerationRequest) -> GenerationResult:
        with self.lock:
            self.submitted[request.task_id] += 1
            self.by_worker[threading.current_thread().name] += 1
        return super().submit(request)


def test_two_workers_dispatch_each_of_50_tasks_exactly_once(
    make_tasks: MakeTasks,
) -> None:
    billing = FakeBillingClient()
    billing.fund("u1", 100)
    provider = SharedCountingProvider()
    env = {"TASKS_WORKER_BATCH": "5"}
    first = make_tasks(env, billing=billing, providers={"local": provider})
    second = make_tasks(env, billing=billing, providers={"local": provider})
    ids = [
        first.use_cases.create_task(
            CreateTaskCommand(
                "u1", TaskType.TEXT_TO_IMAGE, {"prompt": f"p{i}", "width": 256, "height": 256}
            )
        ).task.id
        for i in range(50)
    ]
    start = threading.Barrier(2)

    def drain(tasks: TasksContainer, name: str) -> None:
        worker = tasks.new_worker(name)
        start.wait()
        idle = 0
        while idle < 3:  # a few empty passes in a row: the queue is drained
            idle = idle + 1 if worker.run_once().dispatched == 0 else 0

    threads = [
        threading.Thread(target=drain, args=(app, f"worker-{n}"), name=f"worker-{n}")
        for n, app in enumerate((first, second))
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert sorted(provider.submitted) == sorted(ids)
    assert set(provider.submitted.values()) == {1}
    for task_id in ids:
        with first.uow() as uow:
            task = uow.tasks.get(task_id)
        assert task is not None
        assert task.status is TaskStatus.SUCCEEDED and task.attempts == 1
        assert task.hold_state is HoldState.CAPTURED
    assert billing.balances["u1"] == 50
    assert sum(provider.by_worker.values()) == 50

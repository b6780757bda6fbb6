"""A tasks process (the real wiring) that kills itself with SIGKILL at a chosen point of the saga.

Run by test_crash_recovery.py as ``python -m tests.tasks.crash_child <point> <user>`` with the
tasks settings in the environment. Points:

- ``after_hold``: the hold is placed in billing, the task row still says ``placing``;
- ``mid_dispatch``: the task is ``processing`` and leased, the provider was called;
- ``before_capture``: the result is stored and the task ``succeeded``, the hold not captured.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

from atelier_tasks.application.create_task import CreateTaskCommand
from atelier_tasks.bootstrap import build_container
from atelier_tasks.domain.model import TaskType


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


class KillingBilling:
    def __init__(self, inner: Any, point: str) -> None:
        self.inner, self.point = inner, point

    def hold(
        self,
        user_id: str,
        request_id: str,
        amount: int,
        reference: str,
        budget: float | None = None,
    ) -> None:
        self.inner.hold(user_id, request_id, amount, reference, budget)
        if self.point == "after_hold":
            die()

    def capture(self, user_id: str, request_id: str) -> None:
        if self.point == "before_capture":
            die()
        self.inner.capture(user_id, request_id)

    def release(self, user_id: str, request_id: str) -> bool:
        return bool(self.inner.release(user_id, request_id))


class KillingProvider:
    def __init__(self, inner: Any, point: str) -> None:
        self.inner, self.point = inner, point
        self.name, self.style = inner.name, inner.style

    def submit(self, request: Any) -> Any:
        result = self.inner.submit(request)
        if self.point == "mid_dispatch":
            die()
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def main(point: str, user: str) -> None:
    plain = build_container()
    billing = KillingBilling(plain.billing, point)
    provider = KillingProvider(plain.providers["local"], point)
    tasks = build_container(billing=billing, providers={"local": provider})
    view = tasks.use_cases.create_task(
        CreateTaskCommand(
            user, TaskType.TEXT_TO_IMAGE, {"prompt": "crash", "width": 256, "height": 256}
        )
    )
    print(view.task.id, flush=True)
    tasks.new_worker("doomed").run_once()
    print("survived", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])

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
- content moderation (``moderation.py``, :class:`ContentChecks`, used by the dispatcher):
  the input photos before the provider, every result before it is stored;
- :meth:`fail`, :meth:`time_out`, :meth:`cancel` — the other endings.
- :meth:`settle` — capture the hold of a succeeded task, release any other's.

The parts, each a small class sharing the one :class:`TaskWriter`:

- ``writes.py`` — :class:`TaskWriter`: commit / update / reread / delete (the one write step);
- ``settlement.py`` — :class:`Settlement`: the user's cancel, telling the provider to stop,
  capture or release (uses the writer);
- ``holds.py`` — :class:`HoldPlacement`: place_hold, abandon, abandon_orphan (writer, settlement);
- ``dispatch.py`` — :class:`Dispatcher`: begin_attempt, dispatch, poll, apply_result, retry,
  fail, time_out (writer, settlement).

:class:`TaskSaga` wires them once and is what use cases and the worker call.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime

from atelier_ports.clock import Clock
from atelier_ports.ids import IdGenerator
from atelier_tasks.application.config import TasksConfig
from atelier_tasks.application.moderation import ContentChecks
from atelier_tasks.application.outputs import OutputStore
from atelier_tasks.application.ports import (
    BillingClient,
    ImageTools,
    NoMetrics,
    TaskEventHub,
    TaskMetrics,
    TasksUnitOfWorkFactory,
)
from atelier_tasks.application.ports.generation import GenerationProvider, GenerationResult
from atelier_tasks.application.ports.moderation import Moderation
from atelier_tasks.application.ports.storage import ObjectStorage
from atelier_tasks.application.saga.dispatch import Dispatcher
from atelier_tasks.application.saga.holds import CreateAbandoned, HoldPlacement
from atelier_tasks.application.saga.settlement import Settlement
from atelier_tasks.application.saga.writes import TaskWriter
from atelier_tasks.domain.model import ErrorReason, ResultImage, Task

__all__ = [
    "CreateAbandoned",
    "Dispatcher",
    "HoldPlacement",
    "Settlement",
    "TaskSaga",
    "TaskWriter",
]


class _NoIds:
    """Never asked: without moderation no decision is named."""

    def new_id(self, prefix: str) -> str:
        raise AssertionError("no decisions are made without content moderation")

    def readable_code(self, length: int) -> str:
        raise AssertionError("no decisions are made without content moderation")


class TaskSaga:
    """The saga's parts wired on the given ports; each method is one step (see the module)."""

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
        moderation: Moderation | None = None,
        ids: IdGenerator | None = None,
    ) -> None:
        """``moderation`` None: content moderation is off (MODERATION_ENABLED=false); with
        one, ``ids`` names the decisions."""
        metrics = metrics or NoMetrics()
        if moderation is not None and ids is None:
            raise ValueError("content moderation needs an id generator for its decisions")
        self.checks = ContentChecks(
            moderation=moderation,
            uow=uow,
            ids=ids or _NoIds(),
            clock=clock,
            images=images,
            storage=storage,
        )
        self.writer = TaskWriter(uow=uow, hub=hub)
        self.settlement = Settlement(
            writer=self.writer,
            billing=billing,
            providers=providers,
            clock=clock,
            config=config,
            metrics=metrics,
        )
        self.holds = HoldPlacement(
            writer=self.writer,
            settlement=self.settlement,
            billing=billing,
            clock=clock,
            config=config,
        )
        self.dispatcher = Dispatcher(
            writer=self.writer,
            settlement=self.settlement,
            providers=providers,
            storage=storage,
            outputs=OutputStore(storage=storage, images=images, config=config),
            clock=clock,
            config=config,
            metrics=metrics,
            checks=self.checks,
        )

    # --- the one write step (writes.py) -------------------------------------------------------

    def commit(self, task: Task, images: Sequence[ResultImage] = ()) -> bool:
        return self.writer.commit(task, images)

    def update(self, task: Task, change: Callable[[Task], bool]) -> Task | None:
        return self.writer.update(task, change)

    def reread(self, task: Task) -> Task | None:
        return self.writer.reread(task)

    # --- the hold (holds.py) ------------------------------------------------------------------

    def place_hold(self, task: Task, respond_by: datetime) -> Task:
        return self.holds.place_hold(task, respond_by)

    def abandon(self, task: Task, why: str, reason: str = ErrorReason.BILLING_UNAVAILABLE) -> Task:
        return self.holds.abandon(task, why, reason)

    def abandon_orphan(self, task: Task) -> bool:
        return self.holds.abandon_orphan(task)

    # --- the provider and its results (dispatch.py) -------------------------------------------

    def begin_attempt(self, task: Task, now: datetime) -> bool:
        return self.dispatcher.begin_attempt(task, now)

    def dispatch(self, task: Task, *, started: bool = False) -> None:
        self.dispatcher.dispatch(task, started=started)

    def poll(self, task: Task) -> None:
        self.dispatcher.poll(task)

    def apply_result(self, task: Task, result: GenerationResult) -> bool:
        return self.dispatcher.apply_result(task, result)

    def poll_soon(self, task: Task) -> bool:
        return self.dispatcher.poll_soon(task)

    def fail(self, task: Task, reason: str, message: str) -> bool:
        return self.dispatcher.fail(task, reason, message)

    def time_out(self, task: Task) -> bool:
        return self.dispatcher.time_out(task)

    # --- cancel and settlement (settlement.py) ------------------------------------------------

    def cancel(self, task: Task) -> Task:
        return self.settlement.cancel(task)

    def cancel_at_provider(self, task: Task, job: str | None) -> None:
        self.settlement.cancel_at_provider(task, job)

    def settle(self, task: Task) -> Task:
        return self.settlement.settle(task)

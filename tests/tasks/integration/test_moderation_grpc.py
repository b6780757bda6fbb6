"""Content moderation through the tasks gRPC server, with the real billing service, on SQLite and
PostgreSQL: the decisions table, refusals at each step, the provider down, the admin's overturn.

The moderation provider is a test double of the port (``FakeModeration``); the adapters have their
own contract suite (tests/contracts/integration/test_moderation.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import grpc
import pytest
from atelier_common.context import outgoing_metadata

from atelier.tasks.v1 import tasks_pb2 as pb
from atelier_tasks.adapters.local_generation import LocalGenerationProvider
from atelier_tasks.application.ports.generation import GenerationRequest, GenerationResult
from atelier_tasks.bootstrap import TasksContainer
from atelier_tasks.entrypoints.server import TasksServer, start_server
from tests.support.billing_server import RunningBilling, start_billing_server
from tests.support.fakes import FakeClock
from tests.tasks.billing_rpc import error_reason
from tests.tasks.fakes import FakeModeration
from tests.tasks.harness import MakeTasks
from tests.tasks.stack_calls import StackCalls


class KeptOutputs(LocalGenerationProvider):
    """The local generator, remembering what it produced (to refuse it by its bytes)."""

    def __init__(self) -> None:
        super().__init__()
        self.results: dict[str, GenerationResult] = {}

    def submit(self, request: GenerationRequest) -> GenerationResult:
        result = super().submit(request)
        self.results[request.task_id] = result
        return result


@dataclass
class Stack(StackCalls):
    billing: RunningBilling
    tasks: TasksContainer
    server: TasksServer
    moderation: FakeModeration
    provider: KeptOutputs
    clock: FakeClock
    channel: grpc.Channel

    def create(self, user: str, prompt: str = "a lighthouse") -> Any:
        params = {"prompt": prompt, "width": 256, "height": 256}
        request = pb.CreateTaskRequest(
            type=pb.TASK_TYPE_TEXT_TO_IMAGE, params_json=json.dumps(params).encode()
        )
        return self.stub.CreateTask(request, metadata=self.md(user)).task

    def admin(self) -> tuple[tuple[str, str], ...]:
        return outgoing_metadata(self.billing.internal_token, user_id="admin-1", role="admin")

    def decisions(self, **filters: Any) -> list[Any]:
        reply = self.stub.ListModerationDecisions(
            pb.ListModerationDecisionsRequest(**filters), metadata=self.admin()
        )
        return list(reply.decisions)

    def ledger_ok(self) -> bool:
        return all(check.ok for check in self.billing.app.use_cases.check_ledger())


def middle(data: bytes) -> bytes:
    """32 bytes from the middle of an image: found in that image and no other."""
    return data[len(data) // 2 : len(data) // 2 + 32]


@pytest.fixture
def stack(database_url: str, make_tasks: MakeTasks) -> Iterator[Stack]:
    billing = start_billing_server(database_url)
    moderation = FakeModeration()
    provider = KeptOutputs()
    clock = FakeClock.real()
    tasks = make_tasks(
        {"BILLING_ADDRESS": billing.address},
        clock=clock,
        moderation=moderation,
        providers={"local": provider},
    )
    server = start_server(tasks, "127.0.0.1:0", run_worker=False)
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    try:
        yield Stack(billing, tasks, server, moderation, provider, clock, channel)
    finally:
        channel.close()
        server.grpc.stop()
        billing.stop()


def test_a_refused_prompt_is_content_rejected_and_charges_nothing(stack: Stack) -> None:
    stack.set_up("u1")
    before = stack.balance("u1")
    with pytest.raises(grpc.RpcError) as refused:
        stack.create("u1", prompt="something forbidden")
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert error_reason(refused.value) == "CONTENT_REJECTED"
    assert stack.balance("u1") == before
    listed = stack.stub.ListTasks(pb.ListTasksRequest(), metadata=stack.md("u1"))
    assert list(listed.tasks) == []
    (decision,) = stack.decisions(verdict=pb.MODERATION_VERDICT_REJECTED)
    assert decision.task_id == "" and decision.user_id == "u1"
    assert decision.subject == pb.MODERATION_SUBJECT_PROMPT
    assert [(x.name, round(x.confidence, 2)) for x in decision.labels] == [
        ("Blocked:forbidden", 0.99)
    ]
    assert decision.provider == "fake" and decision.provider_request_id == "req-1"


def test_moderation_down_at_create_is_unavailable_and_does_nothing(stack: Stack) -> None:
    stack.set_up("u1")
    stack.moderation.down = True
    with pytest.raises(grpc.RpcError) as down:
        stack.create("u1")
    assert down.value.code() is grpc.StatusCode.UNAVAILABLE
    assert error_reason(down.value) == "MODERATION_UNAVAILABLE"
    assert stack.balance("u1") == (10, 0)
    assert stack.decisions() == []


def test_a_refused_result_fails_the_task_releases_and_is_never_served(stack: Stack) -> None:
    stack.set_up("u1")
    first = stack.create("u1")
    stack.run_worker()
    good = stack.provider.results[first.id].outputs[0].data
    # From now on the generator's own image of this prompt is refused.
    stack.moderation.blocked_bytes.add(middle(good))
    task = stack.create("u1")
    assert stack.balance("u1") == (8, 1)
    objects_before = set(stack.tasks.storage.root.rglob("*"))  # type: ignore[attr-defined]
    stack.run_worker()
    done = stack.get("u1", task.id)
    assert done.status == pb.TASK_STATUS_FAILED and done.error_reason == "CONTENT_REJECTED"
    assert list(done.images) == []
    assert stack.balance("u1") == (9, 0)  # the first task's credit only
    images = stack.stub.ListImages(pb.ListImagesRequest(), metadata=stack.md("u1")).images
    assert [i.task_id for i in images] == [first.id]
    assert set(stack.tasks.storage.root.rglob("*")) == objects_before  # type: ignore[attr-defined]
    kinds = [(d.task_id, d.subject, d.verdict) for d in stack.decisions()]
    assert (task.id, pb.MODERATION_SUBJECT_RESULT_IMAGE, pb.MODERATION_VERDICT_REJECTED) in kinds
    assert stack.ledger_ok()


def test_moderation_down_in_the_worker_waits_then_finishes(stack: Stack) -> None:
    stack.set_up("u1")
    task = stack.create("u1")
    stack.moderation.down = True
    worker = stack.tasks.new_worker("w")
    for _ in range(4):
        worker.run_once()
        waiting = stack.get("u1", task.id)
        assert waiting.status == pb.TASK_STATUS_PROCESSING and waiting.attempts == 0
        assert list(waiting.images) == []  # generated, but nothing unchecked is stored
        stack.clock.advance(seconds=61)
    assert [d.subject for d in stack.decisions()] == [pb.MODERATION_SUBJECT_PROMPT]
    stack.moderation.down = False
    stack.run_worker()
    assert stack.get("u1", task.id).status == pb.TASK_STATUS_SUCCEEDED
    assert stack.balance("u1") == (9, 0)


def test_overturn_reruns_at_no_charge_and_only_admins_may(stack: Stack) -> None:
    stack.set_up("u1")
    first = stack.create("u1")
    stack.run_worker()
    stack.moderation.blocked_bytes.add(middle(stack.provider.results[first.id].outputs[0].data))
    refused = stack.create("u1")
    stack.run_worker()
    assert stack.balance("u1") == (9, 0)
    (decision,) = stack.decisions(verdict=pb.MODERATION_VERDICT_REJECTED)
    with pytest.raises(grpc.RpcError) as denied:
        stack.stub.OverturnModerationDecision(
            pb.OverturnModerationDecisionRequest(decision_id=decision.id), metadata=stack.md("u1")
        )
    assert denied.value.code() is grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.RpcError) as not_listed:
        stack.stub.ListModerationDecisions(
            pb.ListModerationDecisionsRequest(), metadata=stack.md("u1")
        )
    assert not_listed.value.code() is grpc.StatusCode.PERMISSION_DENIED
    overturned = stack.stub.OverturnModerationDecision(
        pb.OverturnModerationDecisionRequest(decision_id=decision.id), metadata=stack.admin()
    ).decision
    assert overturned.overturned_by == "admin-1" and overturned.HasField("overturn_time")
    rerun_id = overturned.rerun_task_id
    assert rerun_id and rerun_id != refused.id
    stack.run_worker()
    rerun = stack.get("u1", rerun_id)
    assert rerun.status == pb.TASK_STATUS_SUCCEEDED and rerun.cost == 0
    assert len(rerun.images) == 1
    assert stack.balance("u1") == (9, 0)  # nothing charged, nothing held
    again = stack.stub.OverturnModerationDecision(
        pb.OverturnModerationDecisionRequest(decision_id=decision.id), metadata=stack.admin()
    ).decision
    assert again.rerun_task_id == rerun_id
    assert stack.ledger_ok()
    with pytest.raises(grpc.RpcError) as unknown:
        stack.stub.OverturnModerationDecision(
            pb.OverturnModerationDecisionRequest(decision_id="mod_nope"), metadata=stack.admin()
        )
    assert unknown.value.code() is grpc.StatusCode.NOT_FOUND


def test_the_decisions_page_with_tokens_and_filter_by_user(stack: Stack) -> None:
    for user in ("u1", "u2"):
        stack.set_up(user)
        for n in range(3):
            with pytest.raises(grpc.RpcError):
                stack.create(user, prompt=f"forbidden {n}")
            stack.clock.advance(seconds=1)
    seen: list[str] = []
    token = ""
    while True:
        reply = stack.stub.ListModerationDecisions(
            pb.ListModerationDecisionsRequest(page_size=2, page_token=token, user_id="u2"),
            metadata=stack.admin(),
        )
        assert len(reply.page_tokens) == len(reply.decisions)
        seen += [d.id for d in reply.decisions]
        assert all(d.user_id == "u2" for d in reply.decisions)
        token = reply.next_page_token
        if not token:
            break
    assert len(seen) == len(set(seen)) == 3
    with pytest.raises(grpc.RpcError) as bad:
        stack.stub.ListModerationDecisions(
            pb.ListModerationDecisionsRequest(page_token="nope"), metadata=stack.admin()
        )
    assert bad.value.code() is grpc.StatusCode.INVALID_ARGUMENT


def test_waits_are_bounded_by_the_task_deadline(stack: Stack) -> None:
    stack.set_up("u1")
    task = stack.create("u1")
    stack.moderation.down = True
    stack.run_worker()
    stack.clock.advance(seconds=stack.tasks.config.timeout.total_seconds() + 1)
    stack.run_worker()
    done = stack.get("u1", task.id)
    assert done.status == pb.TASK_STATUS_FAILED and done.error_reason == "TIMEOUT"
    assert stack.balance("u1") == (10, 0)
    assert timedelta(0) < stack.tasks.config.timeout

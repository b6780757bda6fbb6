"""GET /v1/tasks/{id} from the gateway's read model, kept fresh by the tasks change feed: real
billing, tasks and gateway servers (SQLite and PostgreSQL)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from atelier_gateway.adapters.grpc_tasks import GrpcTasksGateway
from atelier_gateway.application import task_views as tv
from atelier_gateway.application.calls import Caller
from atelier_gateway.application.task_reads import TaskReadModel
from atelier_tasks.entrypoints.server import TasksServer
from tests.gateway.conftest import Api
from tests.gateway.harness import (
    RunningGateway,
    gateway_settings,
    reserve_socket,
    start_gateway,
    start_tasks_server,
)
from tests.support.billing_server import RunningBilling, start_billing_server

WAIT = 20.0


class CountingTasks(GrpcTasksGateway):
    """The real gRPC adapter, counting the GetTask calls the read path makes."""

    gets = 0

    async def get_task(self, caller: Caller, task_id: str) -> tv.Task:
        self.gets += 1
        return await super().get_task(caller, task_id)


@dataclass
class CacheStack:
    billing: RunningBilling
    tasks: TasksServer
    gateway: RunningGateway
    counting: CountingTasks
    api: Api

    @property
    def model(self) -> TaskReadModel:
        return self.gateway.container.task_reads


def wait_until(check: Callable[[], bool], what: str) -> None:
    """A bounded wait for something another thread does (not a sleep that makes a test pass)."""
    deadline = time.monotonic() + WAIT
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


@contextlib.contextmanager
def cache_stack(
    database_url: str, billing_url: str, tasks_url: str, tmp_path: Path, **gateway_env: Any
) -> Iterator[CacheStack]:
    sock = reserve_socket()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    billing = start_billing_server(
        billing_url, GATEWAY_PUBLIC_URL=url, ATELIER_DATA_DIR=str(tmp_path / "billing-data")
    )
    data_dir = str(tmp_path / "data")
    tasks = start_tasks_server(
        tasks_url,
        ATELIER_DATA_DIR=data_dir,
        ATELIER_INTERNAL_TOKEN=billing.internal_token,
        BILLING_ADDRESS=billing.address,
        GATEWAY_PUBLIC_URL=url,
        run_worker=False,
    )
    address = f"127.0.0.1:{tasks.port}"
    settings = gateway_settings(
        data_dir,
        database_url,
        GATEWAY_PUBLIC_URL=url,
        BILLING_ADDRESS=billing.address,
        ATELIER_INTERNAL_TOKEN=billing.internal_token,
        TASKS_ADDRESS=address,
        **gateway_env,
    )
    counting = CountingTasks(address, billing.internal_token)
    gw = start_gateway(settings, sock=sock, tasks_gateway=counting)
    api = Api(gw.url)
    try:
        yield CacheStack(billing, tasks, gw, counting, api)
    finally:
        api.close()
        gw.stop()
        tasks.stop()
        billing.stop()


@pytest.fixture
def stack(
    database_url: str, billing_database_url: str, tasks_database_url: str, tmp_path: Path
) -> Iterator[CacheStack]:
    with cache_stack(database_url, billing_database_url, tasks_database_url, tmp_path) as s:
        wait_until(lambda: s.model.live, "the change feed to subscribe")
        yield s


def create(stack: CacheStack, email: str) -> tuple[Any, str]:
    user = stack.api.user(email)
    r = user.post("/v1/tasks", json={"type": "text_to_image", "params": {"prompt": "a chair"}})
    assert r.status_code == 201, r.text
    return user, str(r.json()["id"])


def test_reads_are_served_from_memory_and_follow_the_feed(stack: CacheStack) -> None:
    user, task_id = create(stack, "ann@example.com")
    first = user.get(f"/v1/tasks/{task_id}")
    assert first.status_code == 200 and first.json()["status"] == "pending"
    gets = stack.counting.gets
    again = user.get(f"/v1/tasks/{task_id}")
    assert again.content == first.content and stack.counting.gets == gets  # from memory
    # The worker (in the tasks service, not through this gateway) runs the task.
    worker = stack.tasks.container.new_worker("w")
    while worker.run_once().total:
        pass
    wait_until(
        lambda: (kept := stack.model.kept(task_id)) is not None and kept.status == "succeeded",
        "the feed to deliver the result",
    )
    done = user.get(f"/v1/tasks/{task_id}").json()
    assert done["status"] == "succeeded" and len(done["images"]) == 1
    assert stack.counting.gets == gets  # still from memory, with the new state


def test_another_users_task_is_not_found_from_memory_either(stack: CacheStack) -> None:
    ann, task_id = create(stack, "ann@example.com")
    assert ann.get(f"/v1/tasks/{task_id}").status_code == 200
    assert stack.model.kept(task_id) is not None
    bob = stack.api.user("bob@example.com")
    r = bob.get(f"/v1/tasks/{task_id}")
    assert r.status_code == 404 and r.json()["code"] == "not_found"
    assert "a chair" not in r.text and "pending" not in r.text  # nothing of the task
    assert ann.get(f"/v1/tasks/{task_id}").status_code == 200


def test_a_broken_feed_sends_reads_to_get_task_until_it_is_back(stack: CacheStack) -> None:
    user, task_id = create(stack, "ann@example.com")
    user.get(f"/v1/tasks/{task_id}")
    assert stack.model.kept(task_id) is not None
    follower = stack.gateway.container.follow_task_changes
    connections = follower.connections
    # What a lost LISTEN connection does on the tasks side: the feed ends, nothing kept is
    # trusted any more.
    stack.tasks.container.hub.publish_all()
    wait_until(lambda: follower.connections > connections, "the feed to reconnect")
    assert len(stack.model) == 0
    # Changed while nothing was kept: the read asks GetTask and sees it.
    r = user.post(f"/v1/tasks/{task_id}/cancel")
    assert r.status_code == 200
    gets = stack.counting.gets
    assert user.get(f"/v1/tasks/{task_id}").json()["status"] == "cancelled"
    assert user.get(f"/v1/tasks/{task_id}").json()["status"] == "cancelled"
    assert stack.counting.gets <= gets + 1  # asked at most once, then kept again


def test_a_cancel_answer_is_never_followed_by_an_older_read(stack: CacheStack) -> None:
    user, task_id = create(stack, "ann@example.com")
    assert user.get(f"/v1/tasks/{task_id}").json()["status"] == "pending"
    assert user.post(f"/v1/tasks/{task_id}/cancel").json()["status"] == "cancelled"
    # At once, whether or not the feed has delivered the change yet.
    assert user.get(f"/v1/tasks/{task_id}").json()["status"] == "cancelled"


def test_with_the_cache_off_every_read_asks_the_tasks_service(
    database_url: str, billing_database_url: str, tasks_database_url: str, tmp_path: Path
) -> None:
    with cache_stack(
        database_url,
        billing_database_url,
        tasks_database_url,
        tmp_path,
        GATEWAY_TASK_CACHE_SIZE=0,
    ) as stack:
        user, task_id = create(stack, "ann@example.com")
        gets = stack.counting.gets
        for _ in range(3):
            assert user.get(f"/v1/tasks/{task_id}").json()["status"] == "pending"
        assert stack.counting.gets == gets + 3
        assert stack.gateway.container.follow_task_changes.connections == 0
        assert not stack.model.live

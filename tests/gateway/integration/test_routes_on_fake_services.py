"""The real gateway (HTTP on port 0, SQLite) with billing and tasks replaced by fakes of their
ports (``build_container(billing_gateway=..., tasks_gateway=...)``): what the routes do with
the DTOs and with a remote refusal, independent of the other services."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from atelier_common.grpc_client import RemoteCallError

from atelier_gateway.application.task_views import TaskEvent
from tests.gateway.conftest import Api, User
from tests.gateway.fakes import FakeBillingAccounts, FakeBillingGateway, FakeTasksGateway
from tests.gateway.harness import RunningGateway, gateway_settings, start_gateway


@dataclass
class Faked:
    gateway: RunningGateway
    api: Api
    billing: FakeBillingGateway
    tasks: FakeTasksGateway


@pytest.fixture
def faked(tmp_path: Path) -> Iterator[Faked]:
    billing, tasks = FakeBillingGateway(), FakeTasksGateway()
    settings = gateway_settings(str(tmp_path / "data"), f"sqlite:///{tmp_path / 'gateway.db'}")
    gw = start_gateway(
        settings,
        billing_accounts=FakeBillingAccounts(),
        billing_gateway=billing,
        tasks_gateway=tasks,
    )
    api = Api(gw.url)
    yield Faked(gw, api, billing, tasks)
    api.close()
    gw.stop()


def _events(user: User, task_id: str, last_event_id: str = "0") -> list[dict[str, Any]]:
    headers = {**user.auth, "Last-Event-ID": last_event_id}
    events: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    with user.api.http.stream("GET", f"/v1/tasks/{task_id}/events", headers=headers) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            if line.startswith(("id: ", "event: ")):
                key, _, value = line.partition(": ")
                current[key] = value
            elif line.startswith("data: "):
                current["data"] = json.loads(line[6:])
            elif line == "" and "data" in current:
                events.append(current)
                current = {}
    return events


def _event(task_id: str, sequence: int, status: Any, terminal: bool = False) -> TaskEvent:
    return TaskEvent(task_id, sequence, status, None, 0, terminal, None)


def test_the_caller_reaches_the_port_and_the_presenter_answers(faked: Faked) -> None:
    user = faked.api.user("fay@example.com")
    r = user.post("/v1/tasks", json={"type": "basic_clean", "params": {"strength": 2}})
    assert r.status_code == 201, r.text
    assert r.json()["params"] == {"strength": 2} and r.json()["status"] == "pending"
    name, caller = faked.tasks.calls[-1]
    assert (name, caller.user_id, caller.role) == ("create_task", user.id, "user")
    assert caller.request_id == r.headers["X-Request-ID"]
    assert user.get("/v1/me/balance").json()["available"] == 100


def test_the_event_stream_resumes_after_last_event_id_and_ends_on_a_remote_error(
    faked: Faked,
) -> None:
    user = faked.api.user("gus@example.com")
    task_id = user.post("/v1/tasks", json={"type": "text_to_image"}).json()["id"]
    faked.tasks.events = [_event(task_id, 1, "pending"), _event(task_id, 2, "processing")]
    faked.tasks.stream_error = RemoteCallError("tasks", "UNAVAILABLE", "shutting down")
    events = _events(user, task_id, last_event_id="1")
    assert [(e["id"], e["event"], e["data"]["status"]) for e in events if "id" in e] == [
        ("2", "status", "processing")
    ]
    assert events[-1] == {
        "event": "error",
        "data": {"code": "stream_error", "detail": "UNAVAILABLE"},
    }


def test_a_terminal_event_ends_the_stream_and_counts_the_outcome(faked: Faked) -> None:
    user = faked.api.user("hal@example.com")
    task_id = user.post("/v1/tasks", json={"type": "text_to_image"}).json()["id"]
    faked.tasks.events = [_event(task_id, 1, "succeeded", terminal=True)]
    events = _events(user, task_id)
    assert [e["data"]["terminal"] for e in events] == [True]
    metrics = faked.api.http.get("/metrics").text
    assert 'atelier_gateway_task_outcomes_total{status="succeeded"} 1.0' in metrics


@pytest.mark.parametrize(
    ("status", "reason", "http_status", "code"),
    [
        ("INVALID_ARGUMENT", "INVALID_SIGNATURE", 400, "invalid_signature"),
        ("UNAVAILABLE", "", 503, "unavailable"),
    ],
)
def test_a_refused_webhook_is_the_matching_problem(
    faked: Faked, status: str, reason: str, http_status: int, code: str
) -> None:
    faked.billing.error = RemoteCallError("billing", status, "no", reason)
    r = faked.api.http.post("/webhooks/stripe", content=b"{}")
    assert r.status_code == http_status and r.json()["code"] == code
    faked.billing.error = None
    r = faked.api.http.post("/webhooks/stripe", content=b"{}")
    assert r.json() == {"received": True, "applied": True, "event_id": "evt_1"}


def test_the_detail_follows_accept_language_and_the_title_and_code_stay(faked: Faked) -> None:
    user = faked.api.user("ida@example.com")
    zh = user.get("/v1/no-such-route", headers={"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.8"})
    en = user.get("/v1/no-such-route")
    assert zh.status_code == en.status_code == 404
    assert (
        zh.json()["detail"] == "未找到请求的内容。" and en.json()["detail"] != zh.json()["detail"]
    )
    assert (zh.json()["title"], zh.json()["code"]) == (en.json()["title"], en.json()["code"])
    assert zh.headers["Content-Language"] == "zh-CN" and "Content-Language" not in en.headers
    r = user.post("/v1/tasks", json={"type": "nope"}, headers={"Accept-Language": "zh"})
    assert r.status_code == 422 and r.json()["detail"].startswith("请求参数无效")

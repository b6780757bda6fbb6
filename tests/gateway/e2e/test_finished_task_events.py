"""Issue 9 #7 over HTTP: GET /v1/tasks/{id}/events of a finished task, through the real gateway,
tasks and billing services (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import time
from typing import Any

from tests.gateway.conftest import Stack, User


def events_within(
    user: User, task_id: str, last_event_id: str | None, within: float
) -> tuple[list[dict[str, Any]], float]:
    """The events of one SSE response and how long it took to end; a response still open after
    ``within`` seconds fails the test (httpx read timeout)."""
    headers = {**user.auth, "Accept": "text/event-stream"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id
    events: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    started = time.monotonic()
    with user.api.http.stream(
        "GET", f"/v1/tasks/{task_id}/events", headers=headers, timeout=within
    ) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if line.startswith("id: "):
                current["id"] = line[4:]
            elif line.startswith("data: "):
                current["data"] = json.loads(line[6:])
            elif line == "" and "data" in current:
                events.append(current)
                current = {}
    return events, time.monotonic() - started


def finished_task(stack: Stack, user: User) -> tuple[str, list[dict[str, Any]]]:
    r = user.post(
        "/v1/tasks",
        json={"type": "text_to_image", "params": {"prompt": "a pier", "width": 256, "height": 256}},
    )
    assert r.status_code == 201, r.text
    task_id = str(r.json()["id"])
    events, _ = events_within(user, task_id, None, within=60)
    assert events[-1]["data"]["terminal"] is True
    return task_id, events


def test_last_event_id_at_or_past_the_terminal_event_ends_at_once(full_stack: Stack) -> None:
    user = full_stack.api.user("eve@example.com")
    task_id, events = finished_task(full_stack, user)
    terminal = int(events[-1]["id"])
    for last in (str(terminal), str(terminal + 1), "999999", str(2**31), str(2**62)):
        replayed, took = events_within(user, task_id, last, within=10)
        assert replayed == [], last
        assert took < 3.0, (last, took)  # no keep-alive wait (15 s) before the end


def test_last_event_id_before_the_terminal_event_replays_the_rest_then_ends(
    full_stack: Stack,
) -> None:
    user = full_stack.api.user("fay@example.com")
    task_id, events = finished_task(full_stack, user)
    for last in range(0, len(events)):
        replayed, took = events_within(user, task_id, str(last), within=10)
        assert [e["id"] for e in replayed] == [e["id"] for e in events[last:]]
        assert replayed[-1]["data"]["terminal"] is True
        assert took < 3.0

"""End to end over HTTP against billing, tasks and the gateway as three separate processes,
started the way ``make run`` starts them (``python -m atelier_gateway.devstack``)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.gateway.conftest import Api, User
from tests.gateway.e2e.test_tasks import jpeg, read_events, settled_balance
from tests.support.postgres import PostgresServer


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def devstack(
    database_url: str,
    billing_database_url: str,
    tasks_database_url: str,
    tmp_path: Path,
    postgres_server: PostgresServer | None,
) -> Iterator[tuple[str, dict[str, str], subprocess.Popen[str]]]:
    port = _free_port()
    env = {
        **os.environ,
        "ATELIER_DATA_DIR": str(tmp_path / "var"),
        "GATEWAY_PORT": str(port),
        "BILLING_GRPC_PORT": str(_free_port()),
        "TASKS_GRPC_PORT": str(_free_port()),
        "LOCAL_GENERATOR_DELAY_MS": "800",
        "GATEWAY_DATABASE_URL": database_url,
        "BILLING_DATABASE_URL": billing_database_url,
        "TASKS_DATABASE_URL": tasks_database_url,
        "LOG_LEVEL": "WARNING",
    }
    env.pop("ATELIER_INTERNAL_TOKEN", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "atelier_gateway.devstack"],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    url = ""
    for line in proc.stdout:  # ends if the supervisor gives up (it has its own deadline)
        if "Atelier is running:" in line:
            url = line.split("running:", 1)[1].split()[0]
            break
    try:
        assert url == f"http://127.0.0.1:{port}", "the stack did not come up"
        yield url, env, proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            proc.wait(30)


def test_the_whole_product_over_http(
    devstack: tuple[str, dict[str, str], subprocess.Popen[str]],
) -> None:
    url, env, proc = devstack
    api = Api(url)
    user: User = api.user("walker@example.com")
    assert user.get("/v1/me/balance").json()["available"] == 10
    catalog = api.http.get("/v1/catalog").json()
    plan = next(i for i in catalog["items"] if i["kind"] == "membership")

    order = user.post("/v1/orders", json={"item_id": plan["id"], "channel": "local"}).json()
    paid = api.http.post(order["checkout"]["url"], data={"outcome": "paid"})
    assert paid.status_code == 303
    balance = user.get("/v1/me/balance").json()
    assert balance["membership"]["active"] is True
    assert balance["available"] == 10 + plan["credits"]

    data = jpeg(640, 480)
    target = user.post("/v1/uploads", json={"content_type": "image/jpeg", "size": len(data)}).json()
    sent = httpx.post(
        target["url"], data=target["fields"], files={"file": ("p.jpg", data, "image/jpeg")}
    )
    assert sent.status_code == 201
    task = user.post(
        "/v1/tasks", json={"type": "basic_clean", "input_upload_id": target["upload_id"]}
    ).json()
    statuses = [e["data"]["status"] for e in read_events(user, task["id"])]
    assert statuses[-1] == "succeeded" and "processing" in statuses
    done = user.get(f"/v1/tasks/{task['id']}").json()
    import io

    from PIL import Image

    for key in ("url", "thumbnail_url"):
        got = httpx.get(done["images"][0][key])
        assert got.status_code == 200
        Image.open(io.BytesIO(got.content)).verify()

    failing = user.post(
        "/v1/tasks",
        json={"type": "text_to_image", "params": {"prompt": "fail", "sandbox_outcome": "fail"}},
    ).json()
    assert read_events(user, failing["id"])[-1]["data"]["status"] == "failed"

    cancelled = user.post(
        "/v1/tasks", json={"type": "text_to_image", "params": {"prompt": "stop me"}}
    ).json()
    r = user.post(f"/v1/tasks/{cancelled['id']}/cancel")
    assert r.status_code == 200 and r.json()["status"] == "cancelled"

    expected = 10 + plan["credits"] - done["cost"]
    balance = settled_balance(user)
    assert balance["available"] == expected and balance["held"] == 0
    kinds = [
        e["kind"] for e in user.get("/v1/me/ledger", params={"page_size": 100}).json()["items"]
    ]
    assert kinds.count("grant") == 2
    assert kinds.count("hold") == 3 and kinds.count("capture") == 1 and kinds.count("release") == 2

    check = subprocess.run(
        [sys.executable, "-m", "atelier_billing.entrypoints.cli", "check-ledger"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert check.returncode == 0, check.stdout + check.stderr

    # Ctrl-C stops all three cleanly.
    proc.send_signal(signal.SIGINT)
    assert proc.wait(30) == 0
    with pytest.raises(httpx.TransportError):
        httpx.get(url + "/healthz", timeout=2)
    api.close()

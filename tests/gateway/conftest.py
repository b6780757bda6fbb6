"""Gateway fixtures: the real aiohttp app on a real port, with real billing where needed."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.gateway.fakes import FakeBillingAccounts
from tests.gateway.harness import (
    RunningGateway,
    gateway_settings,
    reserve_socket,
    start_gateway,
    start_tasks_server,
)
from tests.support.billing_server import RunningBilling, start_billing_server
from tests.support.postgres import PostgresServer
from tests.tasks.fakes import FakeModeration

PASSWORD = "correct horse battery"


class Api:
    """A thin client of the public HTTP API."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.http = httpx.Client(base_url=base_url, timeout=30.0)

    def signup(self, email: str, password: str = PASSWORD, name: str = "") -> dict[str, Any]:
        r = self.http.post(
            "/v1/auth/signup", json={"email": email, "password": password, "name": name}
        )
        assert r.status_code == 201, r.text
        return dict(r.json())

    def user(self, email: str) -> User:
        body = self.signup(email)
        return User(self, body["user"]["id"], body["access_token"], body["refresh_token"])

    def close(self) -> None:
        self.http.close()


@dataclass
class User:
    api: Api
    id: str
    access_token: str
    refresh_token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.api.http.get(path, headers={**self.auth, **kw.pop("headers", {})}, **kw)

    def post(self, path: str, **kw: Any) -> httpx.Response:
        return self.api.http.post(path, headers={**self.auth, **kw.pop("headers", {})}, **kw)

    def patch(self, path: str, **kw: Any) -> httpx.Response:
        return self.api.http.patch(path, headers={**self.auth, **kw.pop("headers", {})}, **kw)


@pytest.fixture
def fake_billing() -> FakeBillingAccounts:
    return FakeBillingAccounts()


@pytest.fixture
def gateway(tmp_path: Path, fake_billing: FakeBillingAccounts) -> Iterator[RunningGateway]:
    """The gateway on SQLite with billing's account port faked (auth-only tests)."""
    settings = gateway_settings(str(tmp_path / "data"), f"sqlite:///{tmp_path / 'gateway.db'}")
    gw = start_gateway(settings, billing_accounts=fake_billing)
    yield gw
    gw.stop()


@pytest.fixture
def api(gateway: RunningGateway) -> Iterator[Api]:
    client = Api(gateway.url)
    yield client
    client.close()


def _sibling_database(
    name: str, database_url: str, tmp_path: Path, postgres_server: PostgresServer | None
) -> Iterator[str]:
    if database_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / (name + '.db')}"
        return
    assert postgres_server is not None
    url = postgres_server.create_database()
    try:
        yield url
    finally:
        with contextlib.suppress(Exception):
            postgres_server.drop_database(url)


@pytest.fixture
def billing_database_url(
    database_url: str, tmp_path: Path, postgres_server: PostgresServer | None
) -> Iterator[str]:
    """Billing's own database, on the same engine as the gateway's ``database_url``."""
    yield from _sibling_database("billing", database_url, tmp_path, postgres_server)


@pytest.fixture
def tasks_database_url(
    database_url: str, tmp_path: Path, postgres_server: PostgresServer | None
) -> Iterator[str]:
    yield from _sibling_database("tasks", database_url, tmp_path, postgres_server)


@dataclass
class Stack:
    gateway: RunningGateway
    billing: RunningBilling
    api: Api
    tasks: Any = None


@pytest.fixture
def stack(database_url: str, billing_database_url: str, tmp_path: Path) -> Iterator[Stack]:
    """Real billing (gRPC, port 0) and the real gateway, each on its own database."""
    with _stack(database_url, billing_database_url, None, tmp_path) as s:
        yield s


@pytest.fixture
def full_stack(
    database_url: str, billing_database_url: str, tasks_database_url: str, tmp_path: Path
) -> Iterator[Stack]:
    """Billing, tasks (with its worker and local generators) and the gateway."""
    with _stack(database_url, billing_database_url, tasks_database_url, tmp_path) as s:
        yield s


@pytest.fixture
def paused_stack(
    database_url: str, billing_database_url: str, tasks_database_url: str, tmp_path: Path
) -> Iterator[Stack]:
    """The full stack with the tasks worker stopped: tasks stay pending (cancel, races)."""
    with _stack(
        database_url, billing_database_url, tasks_database_url, tmp_path, run_worker=False
    ) as s:
        yield s


@pytest.fixture
def daily_limited_stack(
    database_url: str, billing_database_url: str, tasks_database_url: str, tmp_path: Path
) -> Iterator[Stack]:
    """Paused worker and a daily limit of two generations per user."""
    with _stack(
        database_url,
        billing_database_url,
        tasks_database_url,
        tmp_path,
        run_worker=False,
        tasks_env={"TASKS_DAILY_LIMIT": "2"},
    ) as s:
        yield s


@pytest.fixture
def moderated_stack(
    database_url: str, billing_database_url: str, tasks_database_url: str, tmp_path: Path
) -> Iterator[tuple[Stack, FakeModeration]]:
    """The full stack whose tasks service moderates with a test double of the port."""
    moderation = FakeModeration()
    with _stack(
        database_url, billing_database_url, tasks_database_url, tmp_path, moderation=moderation
    ) as s:
        yield s, moderation


@pytest.fixture
def local_moderated_stack(
    database_url: str, billing_database_url: str, tasks_database_url: str, tmp_path: Path
) -> Iterator[Stack]:
    """The full stack with the local moderation adapter and an operator's own blocked term."""
    terms = tmp_path / "blocked.txt"
    terms.write_text("zorbleflux\n", encoding="utf-8")
    env = {"MODERATION_PROVIDER": "local", "MODERATION_BLOCKED_TERMS_FILE": str(terms)}
    with _stack(
        database_url, billing_database_url, tasks_database_url, tmp_path, tasks_env=env
    ) as s:
        yield s


@contextlib.contextmanager
def _stack(
    database_url: str,
    billing_url: str,
    tasks_url: str | None,
    tmp_path: Path,
    run_worker: bool = True,
    tasks_env: dict[str, str] | None = None,
    moderation: Any = None,
) -> Iterator[Stack]:
    sock = reserve_socket()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    billing = start_billing_server(
        billing_url,
        GATEWAY_PUBLIC_URL=url,
        ATELIER_DATA_DIR=str(tmp_path / "billing-data"),
    )
    data_dir = str(tmp_path / "data")
    tasks = None
    extra: dict[str, str] = {}
    if tasks_url is not None:
        tasks = start_tasks_server(
            tasks_url,
            ATELIER_DATA_DIR=data_dir,
            ATELIER_INTERNAL_TOKEN=billing.internal_token,
            BILLING_ADDRESS=billing.address,
            GATEWAY_PUBLIC_URL=url,
            run_worker=run_worker,
            moderation=moderation,
            **(tasks_env or {}),
        )
        extra["TASKS_ADDRESS"] = f"127.0.0.1:{tasks.port}"
    settings = gateway_settings(
        data_dir,
        database_url,
        GATEWAY_PUBLIC_URL=url,
        BILLING_ADDRESS=billing.address,
        ATELIER_INTERNAL_TOKEN=billing.internal_token,
        **extra,
    )
    gw = start_gateway(settings, sock=sock)
    client = Api(gw.url)
    try:
        yield Stack(gateway=gw, billing=billing, api=client, tasks=tasks)
    finally:
        client.close()
        gw.stop()
        if tasks is not None:
            tasks.stop()
        billing.stop()

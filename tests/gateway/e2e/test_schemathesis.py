"""Schemathesis over the served OpenAPI document: no 5xx and no schema violation on any input.

Every JSON operation of the document is fuzzed against the real stack (gateway, billing, tasks on
SQLite), with valid (positive) and invalid (negative) inputs, once without credentials and once
with a user's token (an administrator's for /v1/admin). Checks: not_a_server_error,
response_schema_conformance and status_code_conformance. Skipped, because they are not JSON
operations (the document marks them ``x-atelier-fuzz: false``): HTML pages and forms (/, /docs,
sandbox checkout, order page), the local upload form (POST /uploads), signed file downloads,
provider webhooks (raw bodies verified by billing/tasks), the SSE stream, /metrics and the
OpenAPI document itself.

Bounded: ATELIER_FUZZ_EXAMPLES examples per operation, mode and identity (default 25), and a
deadline per operation; the figures are printed (run pytest with -s to see them).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    response_schema_conformance,
    status_code_conformance,
)

from atelier_gateway.entrypoints.http.openapi import fuzzable_operations
from tests.gateway.harness import (
    RunningGateway,
    gateway_settings,
    reserve_socket,
    start_gateway,
    start_tasks_server,
)
from tests.support.billing_server import start_billing_server
from tests.support.postgres import PostgresServer

EXAMPLES = int(os.environ.get("ATELIER_FUZZ_EXAMPLES", "25"))
SECONDS_PER_OPERATION = float(os.environ.get("ATELIER_FUZZ_SECONDS_PER_OPERATION", "6"))
CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance]
PASSWORD = "correct horse battery"


@dataclass
class Figures:
    operations: set[str] = field(default_factory=set)
    requests: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def fuzz_stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningGateway]:
    """Billing, tasks (worker stopped: tasks stay pending) and the gateway, rate limits off, on
    SQLite or PostgreSQL (each service its own database)."""
    tmp = tmp_path_factory.mktemp("fuzz")
    with contextlib.ExitStack() as cleanup:
        if request.param == "sqlite":
            urls = {name: f"sqlite:///{tmp / (name + '.db')}" for name in DATABASES}
        else:
            server: PostgresServer | None = request.getfixturevalue("postgres_server")
            if server is None:
                pytest.skip("NO POSTGRESQL AVAILABLE — the PostgreSQL fuzz run is skipped")
            urls = {}
            for name in DATABASES:
                urls[name] = server.create_database()
                cleanup.callback(server.drop_database, urls[name])
        yield from _fuzz_stack(tmp, urls)


DATABASES = ("billing", "tasks", "gateway")


def _fuzz_stack(tmp: Path, urls: dict[str, str]) -> Iterator[RunningGateway]:
    sock = reserve_socket()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    billing = start_billing_server(
        urls["billing"], GATEWAY_PUBLIC_URL=url, ATELIER_DATA_DIR=str(tmp / "billing-data")
    )
    tasks = start_tasks_server(
        urls["tasks"],
        ATELIER_DATA_DIR=str(tmp / "data"),
        ATELIER_INTERNAL_TOKEN=billing.internal_token,
        BILLING_ADDRESS=billing.address,
        GATEWAY_PUBLIC_URL=url,
        run_worker=False,
    )
    gw = start_gateway(
        gateway_settings(
            str(tmp / "data"),
            urls["gateway"],
            GATEWAY_PUBLIC_URL=url,
            BILLING_ADDRESS=billing.address,
            TASKS_ADDRESS=f"127.0.0.1:{tasks.port}",
            ATELIER_INTERNAL_TOKEN=billing.internal_token,
            GATEWAY_RATE_LIMIT_PER_MINUTE="0",
            GATEWAY_AUTH_RATE_LIMIT_PER_MINUTE="0",
        ),
        sock=sock,
    )
    try:
        yield gw
    finally:
        gw.stop()
        tasks.stop()
        billing.stop()


def _token(gw: RunningGateway, email: str, admin: bool = False) -> str:
    r = httpx.post(f"{gw.url}/v1/auth/signup", json={"email": email, "password": PASSWORD})
    assert r.status_code == 201, r.text
    if not admin:
        return str(r.json()["access_token"])
    gw.container.promote_admin(email)
    r = httpx.post(f"{gw.url}/v1/auth/refresh", json={"refresh_token": r.json()["refresh_token"]})
    return str(r.json()["access_token"])


def _fuzz(
    operation: Any,
    mode: GenerationMode,
    base_url: str,
    headers: dict[str, str],
    session: requests.Session,
    figures: Figures,
) -> None:
    started = time.monotonic()
    label = f"{operation.method.upper()} {operation.path}"

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        if time.monotonic() - started > SECONDS_PER_OPERATION:
            return
        figures.requests += 1
        try:
            response = case.call_and_validate(
                base_url=base_url, session=session, headers=headers, checks=CHECKS
            )
            figures.statuses[response.status_code] = (
                figures.statuses.get(response.status_code, 0) + 1
            )
        except (AssertionError, BaseExceptionGroup) as e:
            figures.failures.append(f"{label} [{mode.value}, {sorted(headers)}]: {e}")

    try:
        run()
    except Unsatisfiable:
        # Nothing to make invalid (no parameters, no body): negative mode has no case to send.
        assert mode is GenerationMode.NEGATIVE, label


def test_schemathesis_finds_no_server_error_and_no_schema_violation(
    fuzz_stack: RunningGateway, capsys: pytest.CaptureFixture[str]
) -> None:
    gw = fuzz_stack
    doc = httpx.get(f"{gw.url}/v1/openapi.json").json()
    schema = schemathesis.openapi.from_dict(doc)
    user = {"Authorization": f"Bearer {_token(gw, 'fuzz@example.com')}"}
    admin = {"Authorization": f"Bearer {_token(gw, 'fuzz-admin@example.com', admin=True)}"}
    wanted = set(fuzzable_operations(gw.app))
    figures = Figures()
    started = time.monotonic()
    with requests.Session() as session:
        for result in schema.get_all_operations():
            operation = result.ok()  # type: ignore[union-attr]
            key = (operation.method.upper(), operation.path)
            if key not in wanted:
                continue
            figures.operations.add(f"{key[0]} {key[1]}")
            signed_in = admin if key[1].startswith("/v1/admin/") else user
            for headers in ({}, signed_in):
                for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                    _fuzz(operation, mode, gw.url, headers, session, figures)
    elapsed = time.monotonic() - started
    skipped = sorted(
        f"{m.upper()} {p}"
        for p, item in doc["paths"].items()
        for m, op in item.items()
        if op.get("x-atelier-fuzz") is False
    )
    engine = gw.container.settings.database_url().split(":")[0].split("+")[0]
    with capsys.disabled():  # the figures, quotable from any `make test` output
        print(
            f"\nschemathesis {schemathesis.__version__} on {engine}: "
            f"{len(figures.operations)} operations, "
            f"{figures.requests} requests, {len(figures.failures)} failures in {elapsed:.1f}s; "
            f"statuses {dict(sorted(figures.statuses.items()))}; skipped (not JSON): {skipped}"
        )
    assert {f"{m} {p}" for m, p in wanted} == figures.operations
    assert not figures.failures, "\n\n".join(figures.failures[:10])
    assert not [s for s in figures.statuses if s >= 500]

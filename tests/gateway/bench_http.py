"""``make bench``: the create-task hot path over HTTP against its ceilings, on PostgreSQL.

Starts billing, tasks and gateway as three processes (the ``make run`` supervisor) on fresh
PostgreSQL databases with the local generator at zero delay, then measures, at
``BENCH_CONCURRENCY`` (64) concurrent clients for ``BENCH_SECONDS`` (10) each:

- ``POST /v1/tasks`` requests/s with p50/p99 latency (HTTP → gateway → tasks → billing hold);
- ``GET /v1/tasks/{id}`` requests/s;
- ceiling 1: a bare aiohttp JSON handler's requests/s (same client, same machine);
- ceiling 2: PostgreSQL running the very SQL transaction billing's hold performs (captured from
  the real billing code, replayed with fresh ids by a psycopg loop), transactions/s;

and prints one JSON line with the two ratios. A benchmark, not a test: numbers vary by machine.
PostgreSQL comes from ``ATELIER_TEST_POSTGRES_URL`` or whatever tests/support/postgres.py finds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import psycopg
from aiohttp import web

from tests.support.postgres import find_postgres

CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "64"))
SECONDS = float(os.environ.get("BENCH_SECONDS", "10"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


async def _load(make_request: Any, sessions: int, seconds: float) -> tuple[float, list[float], int]:
    """Run ``make_request(session, worker)`` in a loop on each worker; (rps, latencies, errors)."""
    latencies: list[float] = []
    errors = 0
    stop_at = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker(i: int) -> None:
            nonlocal errors
            while time.perf_counter() < stop_at:
                t0 = time.perf_counter()
                ok = await make_request(session, i)
                if ok:
                    latencies.append(time.perf_counter() - t0)
                else:
                    errors += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker(i) for i in range(sessions)))
        elapsed = time.perf_counter() - started
    return len(latencies) / elapsed, latencies, errors


async def _product_bench(url: str) -> dict[str, Any]:
    tokens: list[str] = []
    async with aiohttp.ClientSession() as session:
        for i in range(CONCURRENCY):
            async with session.post(
                f"{url}/v1/auth/signup",
                json={
                    "email": f"bench{i}-{uuid.uuid4().hex[:6]}@example.com",
                    "password": "bench password 1",
                },
            ) as r:
                assert r.status == 201, await r.text()
                tokens.append((await r.json())["access_token"])
    task_ids: list[str | None] = [None] * CONCURRENCY

    async def create(session: aiohttp.ClientSession, i: int) -> bool:
        async with session.post(
            f"{url}/v1/tasks",
            headers={"Authorization": f"Bearer {tokens[i]}"},
            json={
                "type": "text_to_image",
                "params": {"prompt": "bench", "width": 256, "height": 256},
            },
        ) as r:
            body = await r.read()
            if r.status == 201 and task_ids[i] is None:
                task_ids[i] = json.loads(body)["id"]
            return r.status == 201

    create_rps, create_lat, create_err = await _load(create, CONCURRENCY, SECONDS)

    async def read(session: aiohttp.ClientSession, i: int) -> bool:
        async with session.get(
            f"{url}/v1/tasks/{task_ids[i]}", headers={"Authorization": f"Bearer {tokens[i]}"}
        ) as r:
            await r.read()
            return r.status == 200

    get_rps, _, get_err = await _load(read, CONCURRENCY, SECONDS)
    return {
        "create_task_rps": round(create_rps, 1),
        "create_task_p50_ms": round(_pct(create_lat, 0.50) * 1000, 1),
        "create_task_p99_ms": round(_pct(create_lat, 0.99) * 1000, 1),
        "create_task_errors": create_err,
        "get_task_rps": round(get_rps, 1),
        "get_task_errors": get_err,
    }


def _bare_server(port: int) -> None:
    async def hello(_: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_get("/", hello)
    print("ready", flush=True)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


async def _bare_bench() -> float:
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.gateway.bench_http", "--bare-server", str(port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    proc.stdout.readline()
    try:
        for _ in range(100):
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                await asyncio.sleep(0.05)

        async def hit(session: aiohttp.ClientSession, _: int) -> bool:
            async with session.get(f"http://127.0.0.1:{port}/") as r:
                await r.read()
                return r.status == 200

        rps, _, _ = await _load(hit, CONCURRENCY, SECONDS)
        return rps
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(10)


def _postgres_hold_ceiling(database_url: str, data_dir: Path) -> float:
    """Capture the SQL of billing's real hold transaction per user, replay it with fresh ids."""
    from sqlalchemy import event

    from atelier_billing.adapters.persistence.migrate import upgrade
    from atelier_billing.application.accounts import SetUpAccount
    from atelier_billing.application.holds import HoldCredits
    from atelier_billing.bootstrap import build_container
    from atelier_billing.settings import BillingSettings

    settings = BillingSettings(
        BILLING_DATABASE_URL=database_url,
        ATELIER_DATA_DIR=str(data_dir),
        SIGNUP_BONUS_CREDITS=10_000_000,
    )
    app = build_container(settings)
    upgrade(app.engine)
    captured: list[tuple[str, Any, bool]] = []

    def record(_c: Any, _cur: Any, statement: str, params: Any, _ctx: Any, many: bool) -> None:
        captured.append((statement, params, many))

    scripts: list[tuple[list[tuple[str, Any, bool]], str, str]] = []
    for i in range(CONCURRENCY):
        user = f"bench-user-{i}"
        app.use_cases.set_up_account(SetUpAccount(user))
        request_id = f"bench-req-{i}-{uuid.uuid4().hex}"
        event.listen(app.engine, "before_cursor_execute", record)
        try:
            hold = app.use_cases.hold_credits(HoldCredits(user, request_id, 1, "task:bench"))
        finally:
            event.remove(app.engine, "before_cursor_execute", record)
        scripts.append((list(captured), hold.id, request_id))
        captured.clear()
    app.close()

    def fresh(value: Any, old: tuple[str, str], new: tuple[str, str]) -> Any:
        if isinstance(value, str):
            return value.replace(old[0], new[0]).replace(old[1], new[1])
        if isinstance(value, dict):
            return {k: fresh(v, old, new) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(fresh(v, old, new) for v in value)
        return value

    url = database_url.replace("postgresql+psycopg://", "postgresql://")
    counts = [0] * CONCURRENCY
    stop = threading.Event()

    def replay(i: int) -> None:
        statements, hold_id, request_id = scripts[i]
        with psycopg.connect(url) as conn:
            while not stop.is_set():
                new = (f"hold_{uuid.uuid4().hex}", f"bench-req-{uuid.uuid4().hex}")
                with conn.cursor() as cur:
                    for sql, params, many in statements:
                        args = fresh(params, (hold_id, request_id), new)
                        if many:
                            cur.executemany(sql, args)
                        else:
                            cur.execute(sql, args)
                conn.commit()
                counts[i] += 1

    threads = [threading.Thread(target=replay, args=(i,)) for i in range(CONCURRENCY)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    time.sleep(SECONDS)
    stop.set()
    for t in threads:
        t.join()
    return sum(counts) / (time.perf_counter() - started)


def main() -> int:
    if sys.argv[1:2] == ["--bare-server"]:
        _bare_server(int(sys.argv[2]))
        return 0
    with find_postgres() as (server, how), tempfile.TemporaryDirectory() as tmp:
        if server is None:
            print(f"bench: no PostgreSQL available ({how})", file=sys.stderr)
            return 1
        dbs = [server.create_database() for _ in range(4)]
        try:
            port = _free_port()
            env = {
                **os.environ,
                "ATELIER_DATA_DIR": tmp,
                "GATEWAY_PORT": str(port),
                "BILLING_GRPC_PORT": str(_free_port()),
                "TASKS_GRPC_PORT": str(_free_port()),
                "GATEWAY_DATABASE_URL": dbs[0],
                "BILLING_DATABASE_URL": dbs[1],
                "TASKS_DATABASE_URL": dbs[2],
                "LOCAL_GENERATOR_DELAY_MS": "0",
                "SIGNUP_BONUS_CREDITS": "10000000",
                "TASKS_DAILY_LIMIT": "100000000",
                "GATEWAY_RATE_LIMIT_PER_MINUTE": "0",
                "GATEWAY_AUTH_RATE_LIMIT_PER_MINUTE": "0",
                "LOG_LEVEL": "WARNING",
            }
            stack = subprocess.Popen(
                [sys.executable, "-m", "atelier_gateway.devstack"],
                env=env,
                stdout=subprocess.PIPE,
                text=True,
            )
            assert stack.stdout is not None
            url = ""
            for line in stack.stdout:
                if "Atelier is running:" in line:
                    url = line.split("running:", 1)[1].split()[0]
                    break
            if not url:
                print("bench: the stack did not start", file=sys.stderr)
                return 1
            try:
                product = asyncio.run(_product_bench(url))
            finally:
                stack.send_signal(signal.SIGINT)
                stack.wait(60)
            bare = asyncio.run(_bare_bench())
            pg = _postgres_hold_ceiling(dbs[3], Path(tmp) / "ceiling")
        finally:
            for db in dbs:
                with contextlib.suppress(Exception):
                    server.drop_database(db)
    result = {
        **product,
        "concurrency": CONCURRENCY,
        "seconds": SECONDS,
        "ceiling_bare_aiohttp_rps": round(bare, 1),
        "ceiling_postgres_hold_tps": round(pg, 1),
        "create_vs_bare_aiohttp": round(product["create_task_rps"] / bare, 3) if bare else None,
        "create_vs_postgres_hold": round(product["create_task_rps"] / pg, 3) if pg else None,
        "postgres": how,
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

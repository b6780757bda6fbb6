"""``make bench`` (``python -m bench``): every figure of issue 15 in one run, on PostgreSQL.

In order, on this machine:

1. ``basic_clean`` on a generated 12 MP JPEG, in-process through the local generator adapter.
2. Ceilings: pgbench running the minimal create SQL (``bench/pgbench.py``) on a scratch database,
   and wrk against a bare aiohttp JSON handler (``bench/bare.py``) — same wrk settings as below.
3. The product: billing, tasks (worker off) and gateway as real processes, started by the
   ``make run`` supervisor (``atelier_gateway.devstack``) on fresh PostgreSQL databases, local
   market, generator at zero delay, rate limits off, ``SIGNUP_BONUS_CREDITS`` large enough for the
   whole run. Users sign up over HTTP. Then:
   - worker throughput: tasks created over HTTP, drained by 1 and then 2 ``atelier-tasks worker``
     processes sharing the database; tasks/s counted from when every worker is up;
   - ``POST /v1/tasks`` and ``GET /v1/tasks/{id}`` under wrk (``-t2 -c64 --latency``), with the
     CPU each service process spent (``/proc/<pid>/stat`` deltas) divided by the requests;
   - ``POST /v1/uploads`` under a light wrk load, and signed local payment webhooks (one per
     order, each order paid once) — p95;
   - the task list of one user with 100k tasks (seeded with one SQL statement copying a task made
     over HTTP) under a light wrk load — p95;
   - 500 event streams (SSE through the gateway) on 500 tasks, then the tasks are cancelled over
     HTTP: how many streams received their terminal event.

Prints a table with the targets and PASS/MISS, and writes the same as JSON to ``BENCH_RESULTS``
(default ``bench/results.json``, git-ignored). Settings (environment): ``BENCH_SECONDS`` (10),
``BENCH_CONNECTIONS`` (64), ``BENCH_THREADS`` (2), ``BENCH_LIGHT_CONNECTIONS`` (8),
``BENCH_LIGHT_SECONDS`` (5), ``BENCH_LIST_TASKS`` (100000), ``BENCH_WATCHERS`` (500),
``BENCH_WORKER_TASKS`` (300), ``BENCH_WEBHOOKS`` (200), ``BENCH_CLEAN_RUNS`` (10),
``BENCH_POSTGRES_URL`` (else ``ATELIER_TEST_POSTGRES_URL``, else 127.0.0.1:5432, else whatever
tests/support/postgres.py finds), ``BENCH_ONLY`` (a comma-separated subset of the phases
``clean,pgbench,bare,worker,create,read,uploads,webhook,list,watchers`` — e.g.
``BENCH_ONLY=pgbench,create`` to profile one hot path; default: all). Any service setting in
the environment (e.g. ``TASKS_PROCESSES``) reaches the services; the bench sets only what it
needs.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import io
import json
import os
import platform
import queue
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import psycopg

from bench import pgbench as pgb
from bench import procstat, report
from bench import wrk as wrkmod

ROOT = Path(__file__).resolve().parent.parent
SERVICES = {
    "billing": "atelier_billing",
    "tasks": "atelier_tasks",
    "gateway": "atelier_gateway",
}
TERMINAL = ("succeeded", "failed", "cancelled")
T = TypeVar("T")


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, str(default)))


SECONDS = float(os.environ.get("BENCH_SECONDS", "10"))
CONNECTIONS = _env_int("BENCH_CONNECTIONS", 64)
THREADS = _env_int("BENCH_THREADS", 2)
LIGHT_CONNECTIONS = _env_int("BENCH_LIGHT_CONNECTIONS", 8)
LIGHT_SECONDS = float(os.environ.get("BENCH_LIGHT_SECONDS", "5"))
LIST_TASKS = _env_int("BENCH_LIST_TASKS", 100_000)
WATCHERS = _env_int("BENCH_WATCHERS", 500)
WORKER_TASKS = _env_int("BENCH_WORKER_TASKS", 300)
WEBHOOKS = _env_int("BENCH_WEBHOOKS", 200)
CLEAN_RUNS = _env_int("BENCH_CLEAN_RUNS", 10)
RESULTS = os.environ.get("BENCH_RESULTS", str(ROOT / "bench" / "results.json"))
PHASES: tuple[str, ...] = ("clean", "pgbench", "bare", "worker", "create", "read", "uploads")
PHASES += ("webhook", "list", "watchers")


def only(value: str | None) -> frozenset[str]:
    """The phases ``BENCH_ONLY`` selects (all when unset or empty); unknown names are an error."""
    chosen = frozenset(p.strip() for p in (value or "").split(",") if p.strip())
    unknown = chosen - set(PHASES)
    if unknown:
        raise SystemExit(f"bench: unknown BENCH_ONLY phase(s) {sorted(unknown)}; known: {PHASES}")
    return chosen or frozenset(PHASES)


ONLY = only(os.environ.get("BENCH_ONLY"))
CREATE_BODY = json.dumps(
    {"type": "text_to_image", "params": {"prompt": "bench", "width": 256, "height": 256}}
)


def log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def percentiles(values: Sequence[float]) -> dict[str, float]:
    ordered = sorted(values)
    if not ordered:
        return {}

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]

    return {"p50_ms": at(0.50), "p95_ms": at(0.95), "p99_ms": at(0.99), "max_ms": ordered[-1]}


class Run:
    """The results being gathered, and the problems met on the way (each phase may fail alone)."""

    def __init__(self) -> None:
        self.results: dict[str, Any] = {"problems": []}

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        log(f"{name} ...")
        started = time.perf_counter()
        try:
            yield
        except Exception as exc:
            detail = traceback.format_exc(limit=3).strip().splitlines()[-1]
            self.results["problems"].append(f"{name}: {type(exc).__name__}: {exc} ({detail})")
            log(f"{name} FAILED: {exc}")
        else:
            log(f"{name} done in {time.perf_counter() - started:.1f} s")


# --- PostgreSQL ---------------------------------------------------------------------------


@contextlib.contextmanager
def postgres() -> Iterator[tuple[Any, str]]:
    """(server with create_database/drop_database, how)."""
    from tests.support.postgres import PostgresServer, find_postgres

    explicit = os.environ.get("BENCH_POSTGRES_URL") or os.environ.get("ATELIER_TEST_POSTGRES_URL")
    candidates = [explicit] if explicit else ["postgresql://postgres@127.0.0.1:5432/postgres"]
    for url in candidates:
        try:
            with psycopg.connect(url, connect_timeout=3):
                pass
        except psycopg.Error:
            if explicit:
                raise
            continue
        yield PostgresServer(admin_url=url, how=url.rsplit("@", 1)[-1]), url.rsplit("@", 1)[-1]
        return
    with find_postgres() as (server, how):
        if server is None:
            raise SystemExit(f"bench: no PostgreSQL available ({how})")
        yield server, how


def libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


# --- wrk -----------------------------------------------------------------------------------


def run_wrk(
    wrk: str,
    base_url: str,
    script: str,
    *,
    connections: int,
    seconds: float,
    threads: int = THREADS,
) -> wrkmod.WrkResult:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
        path = f.name
    try:
        cmd = wrkmod.wrk_command(
            wrk, base_url, path, threads=threads, connections=connections, seconds=seconds
        )
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
        if done.returncode != 0:
            raise RuntimeError(f"wrk exited {done.returncode}: {done.stderr.strip()[:300]}")
        return wrkmod.parse_wrk(done.stdout)
    finally:
        os.unlink(path)


def wrk_figures(r: wrkmod.WrkResult) -> dict[str, Any]:
    return {
        "rps": round(r.rps, 1),
        "requests": r.requests,
        "p50_ms": round(r.p50_ms, 2),
        "p95_ms": None if r.p95_ms is None else round(r.p95_ms, 2),
        "p99_ms": round(r.p99_ms, 2),
        "errors": r.errors,
        "error_detail": r.error_detail,
    }


# --- ceilings ------------------------------------------------------------------------------


def pgbench_ceiling(server: Any, run: Run) -> None:
    binary = shutil.which("pgbench") or "/usr/bin/pgbench"
    if not os.path.exists(binary):
        raise RuntimeError("pgbench is not installed (Debian: postgresql-client)")
    url = libpq(server.create_database())
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(pgb.SCHEMA)
            conn.execute(pgb.seed_accounts_sql(CONNECTIONS))
        with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as f:
            f.write(pgb.CREATE_SCRIPT)
            script = f.name
        try:
            cmd = pgb.pgbench_command(
                binary, url, script, clients=CONNECTIONS, threads=THREADS, seconds=SECONDS
            )
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=SECONDS + 120)
        finally:
            os.unlink(script)
        if done.returncode != 0:
            raise RuntimeError(f"pgbench exited {done.returncode}: {done.stderr.strip()[-400:]}")
        result = pgb.parse_pgbench(done.stdout)
        run.results["ceilings"].update(
            pgbench_create_tps=round(result.tps, 1),
            pgbench_transactions=result.transactions,
            pgbench_failed=result.failed,
            pgbench_latency_ms=result.latency_ms,
        )
    finally:
        with contextlib.suppress(Exception):
            server.drop_database(url)


def bare_ceiling(wrk: str, run: Run) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.bare", str(port)], cwd=ROOT, start_new_session=True
    )
    try:
        wait_for_port(port, 20)
        script = wrkmod.lua_script("GET", [wrkmod.Call("", "/")])
        r = run_wrk(
            wrk, f"http://127.0.0.1:{port}", script, connections=CONNECTIONS, seconds=SECONDS
        )
        run.results["ceilings"].update(
            bare_rps=round(r.rps, 1),
            bare_p50_ms=round(r.p50_ms, 3),
            bare_p99_ms=round(r.p99_ms, 3),
            bare_errors=r.errors,
        )
    finally:
        stop_process(proc)


def wait_for_port(port: int, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {seconds} s")


def stop_process(proc: subprocess.Popen[Any], grace: float = 30) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


# --- basic_clean ---------------------------------------------------------------------------


def photo_12mp() -> bytes:
    """A 4000x3000 JPEG that looks like a product photo: a light backdrop, a subject, noise."""
    from PIL import Image, ImageDraw

    w, h = 4000, 3000
    img = Image.linear_gradient("L").resize((w, h)).convert("RGB")
    img = Image.blend(Image.new("RGB", (w, h), (236, 234, 230)), img, 0.08)
    draw = ImageDraw.Draw(img)
    draw.ellipse([1200, 600, 2800, 2500], fill=(150, 40, 60))
    draw.rectangle([1700, 300, 2300, 900], fill=(40, 80, 160))
    draw.polygon([(900, 2600), (3100, 2600), (2000, 1700)], fill=(30, 120, 70))
    # Sensor-like grain in each channel, so the file weighs what a camera's does (~3 MB).
    grain = Image.merge("RGB", [Image.effect_noise((w, h), 48) for _ in range(3)])
    img = Image.blend(img, grain, 0.12)
    out = io.BytesIO()
    img.save(out, format="JPEG", quality=92)
    return out.getvalue()


def basic_clean_bench(run: Run) -> None:
    from atelier_tasks.adapters.local_generation import LocalGenerationProvider
    from atelier_tasks.application.ports.generation import GenerationRequest, GenerationState

    data = photo_12mp()
    provider = LocalGenerationProvider(delay_ms=0)
    timings: list[float] = []
    for i in range(max(1, CLEAN_RUNS)):
        request = GenerationRequest(
            task_id=f"bench-clean-{i}",
            user_id="bench",
            task_type="basic_clean",
            params={},
            inputs=(data,),
        )
        started = time.perf_counter()
        result = provider.submit(request)
        timings.append((time.perf_counter() - started) * 1000)
        if result.state is not GenerationState.SUCCEEDED:
            raise RuntimeError(f"basic_clean failed: {result.error}")
    run.results["basic_clean"] = {
        "requests": len(timings),
        "input_bytes": len(data),
        "input_size": "4000x3000 JPEG",
        **{k: round(v, 1) for k, v in percentiles(timings).items()},
        "errors": 0,
    }


# --- the stack -----------------------------------------------------------------------------


class Stack:
    """billing + tasks + gateway via the ``make run`` supervisor, on fresh PostgreSQL databases."""

    def __init__(self, server: Any, data_dir: str) -> None:
        self.server = server
        self.dbs = {name: server.create_database() for name in SERVICES}
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.webhook_secret = secrets.token_hex(16)
        env = dict(os.environ)
        for key in ("BENCH_RESULTS",):
            env.pop(key, None)
        forced = {
            "MARKET": "local",
            "ATELIER_DATA_DIR": data_dir,
            "GATEWAY_PORT": str(port),
            "GATEWAY_PUBLIC_URL": self.url,
            "BILLING_GRPC_PORT": str(free_port()),
            "TASKS_GRPC_PORT": str(free_port()),
            "GATEWAY_DATABASE_URL": self.dbs["gateway"],
            "BILLING_DATABASE_URL": self.dbs["billing"],
            "TASKS_DATABASE_URL": self.dbs["tasks"],
            "ATELIER_INTERNAL_TOKEN": secrets.token_urlsafe(32),
            "LOCAL_PAYMENT_WEBHOOK_SECRET": self.webhook_secret,
            "LOCAL_GENERATOR_DELAY_MS": "0",
            "LOCAL_GENERATOR_FAIL_RATE": "0",
            "TASKS_WORKER_ENABLED": "false",
            "SIGNUP_BONUS_CREDITS": "100000000",
        }
        # The supervisor derives these from the ports; the worker processes started here need them.
        forced["BILLING_ADDRESS"] = f"127.0.0.1:{forced['BILLING_GRPC_PORT']}"
        forced["TASKS_ADDRESS"] = f"127.0.0.1:{forced['TASKS_GRPC_PORT']}"
        env.update(forced)
        tunable = {
            "TASKS_DAILY_LIMIT": "100000000",
            "GATEWAY_RATE_LIMIT_PER_MINUTE": "0",
            "GATEWAY_AUTH_RATE_LIMIT_PER_MINUTE": "0",
            "GATEWAY_ACCESS_TOKEN_SECONDS": "7200",
            "LOG_LEVEL": "WARNING",
        }
        for key, value in tunable.items():
            env.setdefault(key, value)
        env["PYTHONUNBUFFERED"] = "1"
        self.env = env
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "atelier_gateway.devstack"],
            env=self.env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        lines: queue.Queue[str | None] = queue.Queue()

        def pump() -> None:
            assert self.proc is not None and self.proc.stdout is not None
            for line in self.proc.stdout:
                lines.put(line)
            lines.put(None)

        threading.Thread(target=pump, daemon=True).start()
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=1)
            except queue.Empty:
                continue
            if line is None:
                raise RuntimeError(f"the stack exited ({self.proc.wait()}) before it was ready")
            if "Atelier is running:" in line:
                return
        raise RuntimeError("the stack did not become ready in 180 s")

    def cpu_ms(self) -> dict[str, float]:
        """CPU ms so far of each service, and of PostgreSQL's backends for its databases (a
        lower bound: backends that exit during the run are not counted)."""
        assert self.proc is not None
        cpu = procstat.service_cpu_ms(self.proc.pid, SERVICES)
        names = [url.rsplit("/", 1)[1].split("?")[0] for url in self.dbs.values()]
        cpu["postgres"] = procstat.backend_cpu_ms(names)
        return cpu

    def pids(self) -> dict[str, list[int]]:
        assert self.proc is not None
        return procstat.service_pids(self.proc.pid, SERVICES)

    def tasks_db(self) -> str:
        return libpq(self.dbs["tasks"])

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, grace=90)
        for url in self.dbs.values():
            with contextlib.suppress(Exception):
                self.server.drop_database(url)


def session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(total=120)
    )


async def gather_limited(n: int, jobs: Sequence[Callable[[], Awaitable[T]]]) -> list[T]:
    gate = asyncio.Semaphore(n)

    async def one(job: Callable[[], Awaitable[T]]) -> T:
        async with gate:
            return await job()

    return list(await asyncio.gather(*(one(j) for j in jobs)))


async def sign_up(url: str, count: int) -> list[str]:
    run_id = uuid.uuid4().hex[:8]
    async with session() as s:

        async def one(i: int) -> str:
            async with s.post(
                f"{url}/v1/auth/signup",
                json={"email": f"bench{i}-{run_id}@example.com", "password": "bench password 1"},
            ) as r:
                if r.status != 201:
                    raise RuntimeError(f"signup answered {r.status}: {await r.text()}")
                return str((await r.json())["access_token"])

        return await gather_limited(16, [partial(one, i) for i in range(count)])


async def create_tasks(url: str, tokens: Sequence[str], count: int) -> list[tuple[str, str]]:
    """``count`` tasks over HTTP, round-robin over the users: [(token, task id)]."""
    async with session() as s:

        async def one(i: int) -> tuple[str, str]:
            token = tokens[i % len(tokens)]
            async with s.post(
                f"{url}/v1/tasks",
                data=CREATE_BODY,
                headers={
                    "Authorization": f"Bearer {token}",
                    "Content-Type": "application/json",
                    "Idempotency-Key": f"bench-pre-{uuid.uuid4().hex}",
                },
            ) as r:
                if r.status != 201:
                    raise RuntimeError(f"POST /v1/tasks answered {r.status}: {await r.text()}")
                return token, str((await r.json())["id"])

        return await gather_limited(16, [partial(one, i) for i in range(count)])


# --- phases on the stack -------------------------------------------------------------------


def hot_path(stack: Stack, wrk: str, script: str, run: Run, name: str, ceiling_key: str) -> None:
    before = stack.cpu_ms()
    r = run_wrk(wrk, stack.url, script, connections=CONNECTIONS, seconds=SECONDS)
    after = stack.cpu_ms()
    figures = wrk_figures(r)
    requests = max(r.requests, 1)
    cpu = {k: round((after[k] - before.get(k, 0.0)) / requests, 3) for k in after}
    cpu["services"] = round(sum(v for k, v in cpu.items() if k in SERVICES), 3)
    figures["cpu_ms_per_request"] = cpu
    ceiling = run.results["ceilings"].get(ceiling_key)
    figures["ratio"] = round(r.rps / ceiling, 4) if ceiling else None
    figures["ceiling"] = ceiling_key
    run.results[name] = figures


def worker_throughput(stack: Stack, tokens: Sequence[str], processes: int) -> dict[str, Any]:
    made = asyncio.run(create_tasks(stack.url, tokens, WORKER_TASKS))
    ids = [task_id for _, task_id in made]
    spawn = time.perf_counter()
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "atelier_tasks.entrypoints.cli", "worker"],
            env={**stack.env, "TASKS_WORKER_ID": f"bench-worker-{i}"},
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        for i in range(processes)
    ]
    try:
        for w in workers:
            assert w.stdout is not None
            line = w.stdout.readline()
            if "worker running" not in line:
                raise RuntimeError(f"a worker did not start (exit {w.poll()}): {line.strip()}")
        t0 = time.perf_counter()
        with psycopg.connect(stack.tasks_db(), autocommit=True) as conn:

            def finished() -> int:
                row = conn.execute(
                    "SELECT count(*) FROM tasks WHERE id = ANY(%s) AND status = ANY(%s)",
                    (ids, list(TERMINAL)),
                ).fetchone()
                return int(row[0]) if row else 0

            c0 = finished()
            deadline = t0 + 300
            done = c0
            while done < len(ids) and time.perf_counter() < deadline:
                time.sleep(0.05)
                done = finished()
            t1 = time.perf_counter()
            row = conn.execute(
                "SELECT count(*) FROM tasks WHERE id = ANY(%s) AND status = 'succeeded'", (ids,)
            ).fetchone()
            succeeded = int(row[0]) if row else 0
        if done < len(ids):
            raise RuntimeError(f"{processes} worker(s) finished {done}/{len(ids)} tasks in 300 s")
        if c0 > len(ids) // 2:  # the workers were faster than their own start-up: count it all
            rate, counted_from = len(ids) / (t1 - spawn), "spawn"
        else:
            rate, counted_from = (len(ids) - c0) / max(t1 - t0, 1e-6), "workers up"
        return {
            "tasks": len(ids),
            "tasks_per_s": round(rate, 1),
            "succeeded": succeeded,
            "done_at_start": c0,
            "counted_from": counted_from,
        }
    finally:
        for w in workers:
            stop_process(w)


def presign_bench(stack: Stack, wrk: str, tokens: Sequence[str], run: Run) -> None:
    body = json.dumps({"content_type": "image/jpeg", "size": 2_000_000})
    script = wrkmod.lua_script("POST", [wrkmod.Call(t, "/v1/uploads") for t in tokens], body=body)
    r = run_wrk(wrk, stack.url, script, connections=LIGHT_CONNECTIONS, seconds=LIGHT_SECONDS)
    run.results["presign"] = {**wrk_figures(r), "connections": LIGHT_CONNECTIONS}


def local_signature(secret: str, body: bytes, ts: int) -> str:
    """The local provider's signature: ``t=<ts>,v1=<hex HMAC(secret, "<ts>.<body>")>``."""
    mac = hmac.new(secret.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={ts},v1={mac}"


async def webhook_bench(stack: Stack, tokens: Sequence[str], run: Run) -> None:
    async with session() as s:

        async def order(i: int) -> dict[str, Any]:
            async with s.post(
                f"{stack.url}/v1/orders",
                json={"item_id": "pack_100", "channel": "local"},
                headers={
                    "Authorization": f"Bearer {tokens[i % len(tokens)]}",
                    "Idempotency-Key": f"bench-order-{uuid.uuid4().hex}",
                },
            ) as r:
                if r.status != 201:
                    raise RuntimeError(f"POST /v1/orders answered {r.status}: {await r.text()}")
                return dict(await r.json())

        orders = await gather_limited(16, [partial(order, i) for i in range(WEBHOOKS)])
        timings: list[float] = []
        errors: list[int] = []

        async def notify(o: dict[str, Any]) -> None:
            ts = int(time.time())
            txn = f"ltx_{hashlib.sha256(o['id'].encode()).hexdigest()[:24]}"
            body = json.dumps(
                {
                    "id": f"evt_local_{o['id']}_payment.succeeded",
                    "type": "payment.succeeded",
                    "created": ts,
                    "data": {
                        "order_id": o["id"],
                        "state": "paid",
                        "transaction_id": txn,
                        "amount": o["amount"],
                        "currency": o["currency"],
                    },
                },
                separators=(",", ":"),
            ).encode()
            headers = {
                "Content-Type": "application/json",
                "Atelier-Signature": local_signature(stack.webhook_secret, body, ts),
            }
            started = time.perf_counter()
            async with s.post(f"{stack.url}/webhooks/local", data=body, headers=headers) as r:
                await r.read()
                timings.append((time.perf_counter() - started) * 1000)
                if r.status >= 300:
                    errors.append(r.status)

        await gather_limited(LIGHT_CONNECTIONS, [partial(notify, o) for o in orders])

        async def paid(i: int, o: dict[str, Any]) -> bool:
            async with s.get(
                f"{stack.url}/v1/orders/{o['id']}",
                headers={"Authorization": f"Bearer {tokens[i % len(tokens)]}"},
            ) as r:
                return r.status == 200 and (await r.json()).get("status") == "paid"

        settled = await gather_limited(16, [partial(paid, i, o) for i, o in enumerate(orders)])
    run.results["webhook"] = {
        "orders_paid": sum(settled),
        "requests": len(timings),
        "connections": LIGHT_CONNECTIONS,
        **{k: round(v, 2) for k, v in percentiles(timings).items()},
        # An answer that did not pay its order is an error too.
        "errors": max(len(errors), len(orders) - sum(settled)),
        "error_statuses": sorted(set(errors)),
    }


def seed_tasks_sql(columns: Sequence[tuple[str, bool]], unique: set[str], count: int) -> str:
    """Copies of one template task (``%(template)s``) as ``count`` finished tasks, one statement.

    ``columns`` are (name, is text) in table order; unique text columns get a ``-b<n>`` suffix, the
    times step back one second per copy (so the list's order is the copies' order), and the
    copies are cancelled with their hold released (no worker ever picks them up).
    """
    exprs: list[str] = []
    for name, is_text in columns:
        q = f'"{name}"'
        if name == "id":
            expr = "t.id || '-b' || g"
        elif name == "status":
            expr = "'cancelled'"
        elif name == "hold_state":
            expr = "'released'"
        elif name in ("created_at", "updated_at", "finished_at"):
            expr = "t.created_at - g * interval '1 second'"
        elif name in ("next_attempt_at", "next_poll_at", "lease_owner", "lease_expires_at"):
            expr = "NULL"
        elif name in unique and is_text:
            expr = f"t.{q} || '-b' || g"
        else:
            expr = f"t.{q}"
        exprs.append(expr)
    names = ", ".join(f'"{n}"' for n, _ in columns)
    return (
        f"INSERT INTO tasks ({names}) SELECT {', '.join(exprs)} "
        f"FROM tasks t, generate_series(1, {int(count)}) g WHERE t.id = %(template)s"
    )


def seed_task_list(stack: Stack, template: str, count: int) -> float:
    started = time.perf_counter()
    with psycopg.connect(stack.tasks_db(), autocommit=True) as conn:
        cols = conn.execute(
            "SELECT column_name, data_type IN ('character varying', 'text') FROM "
            "information_schema.columns WHERE table_name = 'tasks' AND table_schema = "
            "current_schema() ORDER BY ordinal_position"
        ).fetchall()
        unique = {
            str(r[0])
            for r in conn.execute(
                "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
                "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = 'tasks'::regclass "
                "AND i.indisunique"
            ).fetchall()
        }
        columns = [(str(name), bool(is_text)) for name, is_text in cols]
        unique.discard("user_id")
        conn.execute(seed_tasks_sql(columns, unique, count).encode(), {"template": template})
        conn.execute("ANALYZE tasks")
    return time.perf_counter() - started


def task_list_bench(stack: Stack, wrk: str, run: Run) -> None:
    [token] = asyncio.run(sign_up(stack.url, 1))
    [(_, template)] = asyncio.run(create_tasks(stack.url, [token], 1))
    seconds = seed_task_list(stack, template, LIST_TASKS)
    script = wrkmod.lua_script("GET", [wrkmod.Call(token, "/v1/tasks?page_size=20")])
    r = run_wrk(wrk, stack.url, script, connections=LIGHT_CONNECTIONS, seconds=LIGHT_SECONDS)
    run.results["task_list"] = {
        **wrk_figures(r),
        "tasks_of_user": LIST_TASKS + 1,
        "seed_seconds": round(seconds, 1),
        "connections": LIGHT_CONNECTIONS,
    }


async def watchers_bench(stack: Stack, tokens: Sequence[str], run: Run) -> None:
    made = await create_tasks(stack.url, tokens, WATCHERS)
    connected = 0
    first_event = 0
    terminal = 0
    all_connected = asyncio.Event()
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), timeout=timeout) as s:

        async def watch(token: str, task_id: str) -> None:
            nonlocal connected, first_event, terminal
            seen = False
            async with s.get(
                f"{stack.url}/v1/tasks/{task_id}/events",
                headers={"Authorization": f"Bearer {token}", "Accept": "text/event-stream"},
            ) as r:
                if r.status != 200:
                    return
                connected += 1
                if connected == len(made):
                    all_connected.set()
                async for raw in r.content:
                    line = raw.decode(errors="replace").strip()
                    if line.startswith("data:"):
                        if not seen:
                            seen, first_event = True, first_event + 1
                        with contextlib.suppress(ValueError):
                            if json.loads(line[5:]).get("status") in TERMINAL:
                                terminal += 1
                                return

        watchers = [asyncio.ensure_future(watch(t, i)) for t, i in made]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(all_connected.wait(), 30)
        opened = connected

        async def cancel(token: str, task_id: str) -> int:
            async with s.post(
                f"{stack.url}/v1/tasks/{task_id}/cancel",
                headers={"Authorization": f"Bearer {token}"},
                timeout=aiohttp.ClientTimeout(total=30),
            ) as r:
                await r.read()
                return r.status

        started = time.perf_counter()
        statuses = await gather_limited(
            64,
            [partial(cancel, t, i) for t, i in made],
        )
        _, pending = await asyncio.wait(watchers, timeout=30)
        for p in pending:
            p.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        seconds = time.perf_counter() - started
    run.results["watchers"] = {
        "watchers": len(made),
        "connected": opened,
        "saw_first_event": first_event,
        "terminal": terminal,
        "missing": len(made) - terminal,
        "cancel_errors": sum(1 for st in statuses if st != 200),
        "seconds": round(seconds, 1),
        "how": "SSE through the gateway; the tasks cancelled over HTTP",
    }


# --- main ----------------------------------------------------------------------------------


def main() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))
    run = Run()
    results = run.results
    results["meta"] = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "cores": os.cpu_count(),
        "machine": platform.platform(),
        "threads": THREADS,
        "connections": CONNECTIONS,
        "seconds": SECONDS,
        "light_connections": LIGHT_CONNECTIONS,
        "git": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip(),
        "load_average": list(os.getloadavg()),
    }
    results["ceilings"] = {}
    wrk, how = wrkmod.find_wrk()
    results["meta"]["wrk"] = how
    if wrk is None:
        results["problems"].append(f"wrk unavailable: {how}; no HTTP load figures")
    if "clean" in ONLY:
        with run.phase("basic_clean 12 MP"):
            basic_clean_bench(run)
    with postgres() as (server, pg_how), tempfile.TemporaryDirectory() as tmp:
        results["meta"]["postgres"] = pg_how
        if "pgbench" in ONLY:
            with run.phase("pgbench ceiling"):
                pgbench_ceiling(server, run)
        if wrk and "bare" in ONLY:
            with run.phase("bare aiohttp ceiling"):
                bare_ceiling(wrk, run)
        stack = Stack(server, tmp)
        try:
            with run.phase("stack start"):
                stack.start()
                results["meta"]["service_processes"] = {k: len(v) for k, v in stack.pids().items()}
            if stack.proc is not None and stack.proc.poll() is None:
                run_stack_phases(stack, wrk, run)
        finally:
            with run.phase("stack stop"):
                stack.stop()
    results["checks"] = report.checks(results)
    results["meta"]["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    Path(RESULTS).parent.mkdir(parents=True, exist_ok=True)
    Path(RESULTS).write_text(report.to_json(results))
    print(report.render(results), flush=True)
    print(f"(JSON: {RESULTS})", flush=True)
    return 0


def run_stack_phases(stack: Stack, wrk: str | None, run: Run) -> None:
    tokens: list[str] = []
    with run.phase("sign up"):
        tokens = asyncio.run(sign_up(stack.url, CONNECTIONS))
    if not tokens:
        return
    if "worker" in ONLY:
        worker: dict[str, Any] = {}
        run.results["worker"] = worker
        with run.phase("worker, 1 process"):
            one = worker_throughput(stack, tokens, 1)
            worker.update(one_tps=one["tasks_per_s"], one=one)
        with run.phase("worker, 2 processes"):
            two = worker_throughput(stack, tokens, 2)
            worker.update(two_tps=two["tasks_per_s"], two=two)
        if worker.get("one_tps") and worker.get("two_tps"):
            worker["speedup"] = round(worker["two_tps"] / worker["one_tps"], 2)
    read_targets: list[tuple[str, str]] = []
    if wrk and "read" in ONLY:
        with run.phase("tasks for the read test"):
            read_targets = asyncio.run(create_tasks(stack.url, tokens, len(tokens)))
    if wrk and "create" in ONLY:
        with run.phase("create (POST /v1/tasks)"):
            script = wrkmod.lua_script(
                "POST",
                [wrkmod.Call(t, "/v1/tasks") for t in tokens],
                body=CREATE_BODY,
                idempotency_prefix=f"bench-{uuid.uuid4().hex[:12]}",
            )
            hot_path(stack, wrk, script, run, "create", "pgbench_create_tps")
    if wrk:
        if read_targets:
            with run.phase("read (GET /v1/tasks/{id})"):
                script = wrkmod.lua_script(
                    "GET", [wrkmod.Call(t, f"/v1/tasks/{i}") for t, i in read_targets]
                )
                hot_path(stack, wrk, script, run, "read", "bare_rps")
        if "uploads" in ONLY:
            with run.phase("POST /v1/uploads"):
                presign_bench(stack, wrk, tokens, run)
    if "webhook" in ONLY:
        with run.phase("payment webhook"):
            asyncio.run(webhook_bench(stack, tokens, run))
    if wrk and "list" in ONLY:
        with run.phase(f"task list at {LIST_TASKS} tasks"):
            task_list_bench(stack, wrk, run)
    if "watchers" in ONLY:
        with run.phase(f"{WATCHERS} event-stream watchers"):
            asyncio.run(watchers_bench(stack, tokens, run))


if __name__ == "__main__":
    raise SystemExit(main())

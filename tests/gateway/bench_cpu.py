"""The gateway's own CPU per request, nothing else: ``python -m tests.gateway.bench_cpu``.

The real gateway application (real wiring, its gRPC adapter to tasks, SQLite for its own tables)
runs alone in a child process; the tasks service is a canned in-process gRPC server here that
answers ``GetTask`` and ``CreateTask`` at once and opens the change feed (so reads are served
from the gateway's task cache; ``GATEWAY_TASK_CACHE_SIZE=0`` measures them without). The child's
CPU (``/proc/<pid>/stat`` user + system time, all its threads) divided by the requests it answered
is the gateway's share of ``GET /v1/tasks/{id}`` and ``POST /v1/tasks``. A benchmark, not a
test: figures vary by machine and load; compare runs made side by side.

Settings: ``BENCH_REQUESTS`` per route (3000), ``BENCH_CONCURRENCY`` (16), and ``BENCH_PROFILE``:
``bench`` (what ``make bench`` runs: rate limits off, LOG_LEVEL=WARNING) or ``default`` (rate
limits on but never reached, LOG_LEVEL=INFO with the access log written to /dev/null);
``BENCH_PY_SPY`` (see ``_py_spy``).
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent import futures
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import grpc

from atelier.tasks.v1 import tasks_pb2 as pb
from atelier.tasks.v1 import tasks_pb2_grpc as pb_grpc

REQUESTS = int(os.environ.get("BENCH_REQUESTS", "3000"))
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "16"))
PROFILE = os.environ.get("BENCH_PROFILE", "bench")
TICKS = os.sysconf("SC_CLK_TCK")
PARAMS = {"prompt": "a lighthouse at dusk", "width": 256, "height": 256}
STORED = {**PARAMS, "negative_prompt": "", "seed": 0}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def _with_params(message: Any, params: dict[str, Any]) -> None:
    """Fill a Task or CreateTaskRequest's parameters in whichever form the proto has."""
    fields = message.DESCRIPTOR.fields_by_name
    if "params_json" in fields:
        message.params_json = json.dumps(params).encode()
    else:
        message.params.update(params)


def _params_of(message: Any) -> dict[str, Any]:
    if "params_json" in message.DESCRIPTOR.fields_by_name:
        return dict(json.loads(message.params_json or b"{}"))
    from google.protobuf import json_format

    return dict(json_format.MessageToDict(message.params))


class CannedTasks(pb_grpc.TaskServiceServicer):
    """Answers at once: a finished task with one image, or the task just "created"."""

    def __init__(self) -> None:
        now = datetime.now(UTC)
        self.finished = pb.Task(
            id="tsk_bench",
            type=pb.TASK_TYPE_TEXT_TO_IMAGE,
            status=pb.TASK_STATUS_SUCCEEDED,
            cost=1,
            provider="local",
            attempts=1,
            images=[
                pb.Image(
                    id="img_bench",
                    task_id="tsk_bench",
                    index=0,
                    content_type="image/png",
                    size_bytes=12345,
                    width=256,
                    height=256,
                    sha256="0" * 64,
                    url="http://127.0.0.1:8080/files/u/tsk_bench/0.png?exp=1&sig=abc",
                    thumbnail_url="http://127.0.0.1:8080/files/u/tsk_bench/0_t.png?exp=1&sig=abc",
                    task_type=pb.TASK_TYPE_TEXT_TO_IMAGE,
                )
            ],
        )
        _with_params(self.finished, STORED)
        for name in ("create_time", "update_time", "start_time", "finish_time", "deadline_time"):
            getattr(self.finished, name).FromDatetime(now)
        self.finished.images[0].create_time.FromDatetime(now)
        self.finished.version = 3
        self.finished.urls_expire_time.FromDatetime(now + timedelta(hours=1))

    def GetTask(self, request: Any, context: Any) -> Any:
        # Each user reads a task of their own (the gateway keeps a view per task and owner).
        task = pb.Task()
        task.CopyFrom(self.finished)
        task.id = request.task_id
        task.user_id = dict(context.invocation_metadata()).get("x-atelier-user-id", "")
        return pb.GetTaskResponse(task=task)

    def WatchTaskChanges(self, request: Any, context: Any) -> Any:
        """Subscribed, then quiet (heartbeats) while the gateway runs: its task cache is on
        (``GATEWAY_TASK_CACHE_SIZE=0`` in the environment measures it off)."""
        yield pb.WatchTaskChangesResponse(subscribed=True)
        while context.is_active():
            time.sleep(1.0)
            yield pb.WatchTaskChangesResponse()

    def CreateTask(self, request: Any, context: Any) -> Any:
        task = pb.Task(
            id="tsk_" + uuid.uuid4().hex[:12],
            type=request.type,
            status=pb.TASK_STATUS_PENDING,
            cost=1,
            provider="local",
        )
        _with_params(task, {**_params_of(request), "negative_prompt": "", "seed": 0})
        task.create_time.GetCurrentTime()
        task.update_time.GetCurrentTime()
        return pb.CreateTaskResponse(task=task)


def _serve_gateway(port: int, tasks_port: int, data_dir: str, env: dict[str, str]) -> None:
    """The child: the real gateway application, with billing's account port faked."""
    from aiohttp import web
    from atelier_common.logs import configure_logging

    from atelier_gateway.adapters.migrate import migrate
    from atelier_gateway.bootstrap import build_container
    from atelier_gateway.entrypoints.http.app import create_app
    from tests.gateway.fakes import FakeBillingAccounts
    from tests.gateway.harness import gateway_settings

    settings = gateway_settings(
        data_dir,
        f"sqlite:///{data_dir}/gateway.db",
        TASKS_ADDRESS=f"127.0.0.1:{tasks_port}",
        **env,
    )
    sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - the access log, unread
    configure_logging(settings.log_level)
    container = build_container(settings, billing_accounts=FakeBillingAccounts())
    migrate(container.engine)
    web.run_app(create_app(container), host="127.0.0.1", port=port, print=None, access_log=None)


async def _wait_up(url: str) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(300):
            try:
                async with session.get(f"{url}/healthz") as r:
                    if r.status < 500:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError("the gateway did not start")


async def _run(url: str, pid: int) -> dict[str, Any]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        tokens = []
        for _ in range(CONCURRENCY):
            body = {"email": f"b{uuid.uuid4().hex[:8]}@example.com", "password": "bench pw 12345"}
            async with session.post(f"{url}/v1/auth/signup", json=body) as r:
                assert r.status == 201, await r.text()
                tokens.append((await r.json())["access_token"])

        async def get(i: int) -> int:
            headers = {"Authorization": f"Bearer {tokens[i % len(tokens)]}"}
            path = f"{url}/v1/tasks/tsk_bench_{i % len(tokens)}"
            async with session.get(path, headers=headers) as r:
                await r.read()
                return r.status

        async def create(i: int) -> int:
            headers = {"Authorization": f"Bearer {tokens[i % len(tokens)]}"}
            body = {"type": "text_to_image", "params": PARAMS}
            async with session.post(f"{url}/v1/tasks", json=body, headers=headers) as r:
                await r.read()
                return r.status

        async def load(call: Any, n: int, ok: int) -> tuple[float, float]:
            queue = iter(range(n))
            bad = 0

            async def worker() -> None:
                nonlocal bad
                for i in queue:
                    if await call(i) != ok:
                        bad += 1

            cpu0, t0 = _cpu_seconds(pid), time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
            cpu, wall = _cpu_seconds(pid) - cpu0, time.perf_counter() - t0
            assert bad == 0, f"{bad} unexpected statuses"
            return cpu / n * 1000, n / wall

        await load(get, 300, 200)  # warm up both paths
        await load(create, 300, 201)
        get_ms, get_rps = await load(get, REQUESTS, 200)
        create_ms, create_rps = await load(create, REQUESTS, 201)
    return {
        "profile": PROFILE,
        "requests": REQUESTS,
        "concurrency": CONCURRENCY,
        "get_task_gateway_cpu_ms": round(get_ms, 3),
        "create_task_gateway_cpu_ms": round(create_ms, 3),
        "get_task_rps": round(get_rps, 1),
        "create_task_rps": round(create_rps, 1),
    }


def _py_spy(pid: int) -> subprocess.Popen[bytes] | None:
    """``BENCH_PY_SPY=out.txt``: sample the gateway with py-spy (installed by hand in the venv)
    into collapsed stacks, for finding where its CPU goes."""
    out = os.environ.get("BENCH_PY_SPY")
    if not out:
        return None
    spy = os.path.join(os.path.dirname(sys.executable), "py-spy")
    command = [spy, "record", "-p", str(pid), "-o", out, "-f", "raw", "-r", "250", "--nonblocking"]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL)


def main() -> None:
    env = {"GATEWAY_RATE_LIMIT_PER_MINUTE": "0", "GATEWAY_AUTH_RATE_LIMIT_PER_MINUTE": "0"}
    env["LOG_LEVEL"] = "WARNING"
    if "GATEWAY_TASK_CACHE_SIZE" in os.environ:
        env["GATEWAY_TASK_CACHE_SIZE"] = os.environ["GATEWAY_TASK_CACHE_SIZE"]
    if PROFILE == "default":
        env = {
            "GATEWAY_RATE_LIMIT_PER_MINUTE": "100000000",
            "GATEWAY_RATE_LIMIT_BURST": "100000000",
            "LOG_LEVEL": "INFO",
        }
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    # Only the methods the bench calls are written (the others answer UNIMPLEMENTED).
    canned = CannedTasks()  # type: ignore[abstract]
    pb_grpc.add_TaskServiceServicer_to_server(canned, server)
    tasks_port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    port = _free_port()
    with tempfile.TemporaryDirectory() as data_dir:
        child = multiprocessing.get_context("spawn").Process(
            target=_serve_gateway, args=(port, tasks_port, data_dir, env), daemon=True
        )
        child.start()
        assert child.pid is not None
        try:
            url = f"http://127.0.0.1:{port}"
            asyncio.run(_wait_up(url))
            spy = _py_spy(child.pid)
            print(json.dumps(asyncio.run(_run(url, child.pid))))
            if spy is not None:
                spy.send_signal(signal.SIGINT)
                spy.wait(30)
        finally:
            child.terminate()
            child.join(10)
            server.stop(None)
    sys.stdout.flush()


if __name__ == "__main__":
    main()

"""A quick measurement of one gRPC hop: ``GetTask`` in a loop against ``atelier-tasks serve`` (its
own process, PostgreSQL), at 1 and at ``--concurrency`` callers. Prints one JSON line.

    .venv/bin/python -m tests.tasks.bench_grpc_get postgresql://postgres@127.0.0.1:5432/postgres

Creates two throwaway databases on that server (dropped at the end). Not a test: a figure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import grpc
import grpc.aio
import psycopg
from atelier_common.context import outgoing_metadata

from atelier.billing.v1 import billing_pb2 as bpb
from atelier.billing.v1 import billing_pb2_grpc as bpb_grpc
from atelier.tasks.v1 import tasks_pb2 as pb
from atelier.tasks.v1 import tasks_pb2_grpc as pb_grpc

TOKEN = "bench-token"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def _databases(admin_url: str) -> Iterator[tuple[str, str]]:
    names = [f"bench_{kind}_{uuid.uuid4().hex[:8]}" for kind in ("billing", "tasks")]
    with psycopg.connect(admin_url, autocommit=True) as conn:
        for name in names:
            conn.execute(f'CREATE DATABASE "{name}"')
    base = admin_url.rsplit("/", 1)[0]
    try:
        yield f"{base}/{names[0]}", f"{base}/{names[1]}"
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            for name in names:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _serve(module: str, env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    subprocess.run(
        [sys.executable, "-m", module, "migrate"], env=env, check=True, capture_output=True
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", module, "serve", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "listening" not in line:
        raise SystemExit(f"{module} did not start")
    return proc


async def _loop(address: str, task_id: str, concurrency: int, seconds: float) -> dict[str, float]:
    md = outgoing_metadata(TOKEN, user_id="bench-user")
    latencies: list[float] = []
    async with grpc.aio.insecure_channel(address) as channel:
        stub = pb_grpc.TaskServiceStub(channel)
        await stub.GetTask(pb.GetTaskRequest(task_id=task_id), metadata=md)  # warm up
        end = time.perf_counter() + seconds

        async def caller() -> None:
            while time.perf_counter() < end:
                started = time.perf_counter()
                await stub.GetTask(pb.GetTaskRequest(task_id=task_id), metadata=md)
                latencies.append(time.perf_counter() - started)

        began = time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
    latencies.sort()
    return {
        "rps": round(len(latencies) / elapsed, 1),
        "p50_ms": round(latencies[len(latencies) // 2] * 1e3, 2),
        "p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1e3, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("postgres_url")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    with _databases(args.postgres_url) as (billing_db, tasks_db):
        billing_port, tasks_port = _free_port(), _free_port()
        env = {
            **os.environ,
            "ATELIER_INTERNAL_TOKEN": TOKEN,
            "BILLING_DATABASE_URL": billing_db,
            "TASKS_DATABASE_URL": tasks_db,
            "BILLING_GRPC_PORT": str(billing_port),
            "TASKS_GRPC_PORT": str(tasks_port),
            "BILLING_ADDRESS": f"127.0.0.1:{billing_port}",
            "LOG_LEVEL": "WARNING",
        }
        billing = _serve("atelier_billing.entrypoints.cli", env)
        tasks = _serve("atelier_tasks.entrypoints.cli", env, "--no-worker")
        try:
            md = outgoing_metadata(TOKEN, user_id="bench-user")
            with grpc.insecure_channel(f"127.0.0.1:{billing_port}") as channel:
                bpb_grpc.BillingServiceStub(channel).SetUpAccount(
                    bpb.SetUpAccountRequest(), metadata=md
                )
            params = json.dumps({"prompt": "bench", "width": 256, "height": 256}).encode()
            with grpc.insecure_channel(f"127.0.0.1:{tasks_port}") as channel:
                task = (
                    pb_grpc.TaskServiceStub(channel)
                    .CreateTask(
                        pb.CreateTaskRequest(type=pb.TASK_TYPE_TEXT_TO_IMAGE, params_json=params),
                        metadata=md,
                    )
                    .task
                )
            address = f"127.0.0.1:{tasks_port}"
            one = asyncio.run(_loop(address, task.id, 1, args.seconds))
            many = asyncio.run(_loop(address, task.id, args.concurrency, args.seconds))
        finally:
            for proc in (tasks, billing):
                proc.terminate()
                proc.wait(30)
    print(json.dumps({"get_task_1": one, f"get_task_{args.concurrency}": many}))


if __name__ == "__main__":
    main()

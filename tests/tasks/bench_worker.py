"""Worker throughput: tasks per second dispatched (local generator, zero delay) by 1..N workers.

Each worker is its own process with its own engine, like a replica. Billing is a no-op stand-in
by default (it measures the tasks side); ``--real-billing`` runs the real billing service
in-process and the workers capture through gRPC.

    .venv/bin/python -m tests.tasks.bench_worker \
        --database-url postgresql://postgres@127.0.0.1:5432/postgres --tasks 200 --workers 1 2
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import tempfile
import time
import uuid
from typing import Any

import psycopg


class NoBilling:
    def hold(
        self,
        user_id: str,
        request_id: str,
        amount: int,
        reference: str,
        budget: float | None = None,
    ) -> None: ...

    def capture(self, user_id: str, request_id: str) -> None: ...

    def release(self, user_id: str, request_id: str) -> bool:
        return True


def _settings(url: str, data_dir: str, billing_address: str | None) -> Any:
    from atelier_tasks.settings import TasksSettings

    env: dict[str, Any] = {
        "TASKS_DATABASE_URL": url,
        "ATELIER_DATA_DIR": data_dir,
        "TASKS_WORKER_BATCH": 10,
        "LOCAL_GENERATOR_DELAY_MS": 0,
        "TASKS_DAILY_LIMIT": 1_000_000,
    }
    if billing_address:
        env["BILLING_ADDRESS"] = billing_address
        env["ATELIER_INTERNAL_TOKEN"] = "test-internal-token"
    return TasksSettings(**env)


def _worker(
    url: str, data_dir: str, billing_address: str | None, name: str, q: Any, go: Any
) -> None:
    from atelier_tasks.bootstrap import build_container

    overrides: dict[str, Any] = {} if billing_address else {"billing": NoBilling()}
    app = build_container(_settings(url, data_dir, billing_address), **overrides)
    worker = app.new_worker(name)
    q.put("ready")
    go.wait()  # start-up (imports, connections) is not part of the measurement
    cpu = time.process_time()
    done = idle = 0
    finished = time.time()
    while idle < 3:
        n = worker.run_once().dispatched
        done += n
        if n:
            finished = time.time()
        idle = idle + 1 if n == 0 else 0
    q.put((done, time.process_time() - cpu, finished))
    app.close()


def run(admin_url: str, tasks: int, workers: int, size: int, real_billing: bool) -> float:
    from atelier_tasks.adapters.db.migrate import upgrade
    from atelier_tasks.application.create_task import CreateTaskCommand
    from atelier_tasks.bootstrap import build_container
    from atelier_tasks.domain.model import TaskType

    name = f"atelier_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = admin_url.rsplit("/", 1)[0] + f"/{name}"
    billing = None
    try:
        data_dir = tempfile.mkdtemp(prefix="atelier-bench-")
        address = None
        if real_billing:
            from tests.support.billing_server import start_billing_server

            billing = start_billing_server(url)
            address = billing.address
        overrides: dict[str, Any] = {} if real_billing else {"billing": NoBilling()}
        app = build_container(_settings(url, data_dir, address), **overrides)
        upgrade(app.engine)
        if billing is not None:
            from atelier.billing.v1 import billing_pb2 as bpb

            with billing.channel() as ch:
                billing.stub(ch).SetUpAccount(
                    bpb.SetUpAccountRequest(), metadata=billing.metadata("bench")
                )
                billing.stub(ch).AdjustCredits(
                    bpb.AdjustCreditsRequest(
                        user_id="bench", amount=tasks, reason="bench", request_id="bench"
                    ),
                    metadata=billing.metadata("admin", role="admin"),
                )
        params = {"prompt": "bench", "width": size, "height": size}
        for i in range(tasks):
            app.use_cases.create_task(
                CreateTaskCommand("bench", TaskType.TEXT_TO_IMAGE, {**params, "seed": i})
            )
        app.close()
        ctx = mp.get_context("spawn")
        q, go = ctx.Queue(), ctx.Event()
        procs = [
            ctx.Process(target=_worker, args=(url, data_dir, address, f"w{n}", q, go))
            for n in range(workers)
        ]
        for p in procs:
            p.start()
        for _ in procs:
            assert q.get() == "ready"
        started = time.time()
        go.set()
        results = [q.get() for _ in procs]
        elapsed = max(r[2] for r in results) - started
        for p in procs:
            p.join()
        counts = [r[0] for r in results]
        assert sum(counts) == tasks, counts
        cpu = sum(r[1] for r in results)
        print(f"  worker CPU {cpu:.1f} s over {elapsed:.1f} s wall, split {counts}")
        return float(tasks / elapsed)
    finally:
        if billing is not None:
            billing.stop()
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--size", type=int, default=512, help="image side in pixels")
    parser.add_argument("--real-billing", action="store_true")
    args = parser.parse_args()
    for n in args.workers:
        rate = run(args.database_url, args.tasks, n, args.size, args.real_billing)
        billing = "real billing" if args.real_billing else "no-op billing"
        print(f"{n} worker(s): {rate:.1f} tasks/s ({args.tasks} tasks, {args.size}px, {billing})")


if __name__ == "__main__":
    main()

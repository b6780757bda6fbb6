"""``atelier-tasks``: serve (with the worker unless TASKS_WORKER_ENABLED=false), migrate, worker,
check-config."""

from __future__ import annotations

import argparse
import logging
import sys

from atelier_common.cli import (
    Command,
    migrate_database,
    migrate_quietly,
    run_cli,
    serve_until_stopped,
)
from atelier_common.lifecycle import catch_stop_signals
from atelier_common.processes import process_index, serve_processes, shares_port

from atelier_tasks.adapters.db.migrate import upgrade
from atelier_tasks.bootstrap import build_container
from atelier_tasks.entrypoints.server import start_server, start_worker
from atelier_tasks.settings import TasksSettings

PROGRAM = "atelier-tasks"
MODULE = "atelier_tasks.entrypoints.cli"
log = logging.getLogger("atelier.tasks")


def announce_stand_ins(settings: TasksSettings) -> None:
    """ONE line at start when the cn market runs parts of issue 12 on local adapters."""
    stand_ins = settings.stand_ins()
    if stand_ins:
        log.warning(
            "MARKET=cn: %s not built yet; using the local generators and storage instead",
            ", ".join(stand_ins),
        )


def _migrate(settings: TasksSettings, _args: argparse.Namespace) -> int:
    return migrate_database("tasks", settings.resolved_database_url(), upgrade)


def _serve(settings: TasksSettings, args: argparse.Namespace) -> int:
    if not shares_port():  # once: alone, or the supervisor of several processes
        announce_stand_ins(settings)
    if settings.processes > 1:
        if args.migrate:
            migrate_quietly(settings.resolved_database_url(), upgrade)
        worker = {None: [], True: ["--worker"], False: ["--no-worker"]}[args.worker]
        return serve_processes(
            service="tasks",
            module=MODULE,
            args=["serve", *worker],
            count=settings.processes,
            host=settings.grpc_host,
            port=settings.grpc_port,
            processes_env="TASKS_PROCESSES",
            port_env="TASKS_GRPC_PORT",
        )
    app = build_container(settings)
    if args.migrate:
        upgrade(app.engine)
    if settings.metrics_port:
        # Several processes: process i serves its metrics on TASKS_METRICS_PORT + i.
        app.metrics.serve(settings.metrics_port + process_index(), settings.grpc_host)
    address = f"{settings.grpc_host}:{settings.grpc_port}"
    server = start_server(app, address, run_worker=args.worker)
    return serve_until_stopped("tasks", settings.grpc_host, server)


def _worker(settings: TasksSettings, _args: argparse.Namespace) -> int:
    announce_stand_ins(settings)
    app = build_container(settings)
    if settings.metrics_port:
        app.metrics.serve(settings.metrics_port, settings.grpc_host)
    handle = start_worker(app)
    stopped = catch_stop_signals()
    print("tasks worker running", flush=True)
    stopped.wait()
    handle.stop()
    app.close()
    return 0


def _serve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--migrate", action="store_true", help="migrate the database first")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--worker", dest="worker", action="store_true", default=None)
    group.add_argument("--no-worker", dest="worker", action="store_false")


COMMANDS: tuple[Command[TasksSettings], ...] = (
    Command("serve", "run the gRPC server (and the worker)", _serve, _serve_arguments),
    Command("migrate", "create or upgrade the database schema", _migrate),
    Command("worker", "run only the background worker", _worker),
)


def main(argv: list[str] | None = None) -> int:
    return run_cli(PROGRAM, __doc__, TasksSettings, COMMANDS, argv)


if __name__ == "__main__":
    sys.exit(main())

"""``atelier-tasks``: serve (with the worker unless TASKS_WORKER_ENABLED=false), migrate, worker,
check-config."""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from atelier_common.logs import configure_logging
from atelier_common.startup import ConfigurationError, check_startup, load_settings, report

from atelier_tasks.adapters.db.migrate import upgrade
from atelier_tasks.bootstrap import build_app
from atelier_tasks.entrypoints.server import start_server, start_worker
from atelier_tasks.settings import TasksSettings

PROGRAM = "atelier-tasks"


def _wait_for_signal() -> None:
    stopped = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopped.set())
    stopped.wait()


def _migrate(settings: TasksSettings) -> int:
    app = build_app(settings)
    try:
        upgrade(app.engine)
    finally:
        app.close()
    print(f"tasks database migrated ({app.engine.url.render_as_string(hide_password=True)})")
    return 0


def _serve(settings: TasksSettings, migrate_first: bool, worker: bool | None) -> int:
    app = build_app(settings)
    if migrate_first:
        upgrade(app.engine)
    if settings.metrics_port:
        app.metrics.serve(settings.metrics_port, settings.grpc_host)
    server = start_server(app, f"{settings.grpc_host}:{settings.grpc_port}", run_worker=worker)
    print(f"tasks gRPC listening on {settings.grpc_host}:{server.port}", flush=True)
    _wait_for_signal()
    server.stop()
    return 0


def _worker(settings: TasksSettings) -> int:
    app = build_app(settings)
    if settings.metrics_port:
        app.metrics.serve(settings.metrics_port, settings.grpc_host)
    handle = start_worker(app)
    print("tasks worker running", flush=True)
    _wait_for_signal()
    handle.stop()
    app.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROGRAM, description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the gRPC server (and the worker)")
    serve.add_argument("--migrate", action="store_true", help="migrate the database first")
    group = serve.add_mutually_exclusive_group()
    group.add_argument("--worker", dest="worker", action="store_true", default=None)
    group.add_argument("--no-worker", dest="worker", action="store_false")
    sub.add_parser("migrate", help="create or upgrade the database schema")
    sub.add_parser("worker", help="run only the background worker")
    sub.add_parser("check-config", help="check the configuration can start, and exit")
    args = parser.parse_args(argv)
    try:
        settings = load_settings(TasksSettings, PROGRAM)
        check_startup(settings, PROGRAM)
    except ConfigurationError as e:
        return report(e)
    if args.command == "check-config":
        print(f"{PROGRAM}: configuration ok (MARKET={settings.market})")
        return 0
    configure_logging(settings.log_level)
    if args.command == "migrate":
        return _migrate(settings)
    if args.command == "serve":
        return _serve(settings, args.migrate, args.worker)
    return _worker(settings)


if __name__ == "__main__":
    sys.exit(main())

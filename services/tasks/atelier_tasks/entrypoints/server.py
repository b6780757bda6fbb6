"""Starting the tasks gRPC server (and, switchable, the worker loop) from a wired TasksApp."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

from atelier_common.grpc_server import RunningServer, ServerConfig, build_server

from atelier.tasks.v1 import tasks_pb2_grpc as pb_grpc
from atelier_tasks.bootstrap import TasksApp
from atelier_tasks.entrypoints.grpc_api import SERVICE_NAME, USERLESS_METHODS, TaskServicer

log = logging.getLogger("atelier.tasks")


@dataclass
class WorkerThread:
    stop_event: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def stop(self) -> None:
        self.stop_event.set()
        if self.thread is not None:
            self.thread.join(timeout=10)


def start_worker(app: TasksApp, owner: str | None = None) -> WorkerThread:
    worker = app.new_worker(owner)
    handle = WorkerThread()
    handle.thread = threading.Thread(
        target=worker.run_forever,
        args=(handle.stop_event, app.settings.worker_idle_seconds),
        name="tasks-worker",
        daemon=True,
    )
    handle.thread.start()
    return handle


@dataclass
class TasksServer:
    app: TasksApp
    grpc: RunningServer
    worker: WorkerThread | None

    @property
    def port(self) -> int:
        return self.grpc.port

    def stop(self) -> None:
        if self.worker is not None:
            self.worker.stop()
        self.grpc.stop()
        self.app.close()


def start_server(app: TasksApp, address: str, *, run_worker: bool | None = None) -> TasksServer:
    settings = app.settings
    servicer = TaskServicer(app.use_cases, app.clock)
    running = build_server(
        ServerConfig(
            service_names=(SERVICE_NAME,),
            internal_token=settings.internal_token.get_secret_value(),
            error_domain="tasks.atelier",
            max_workers=settings.grpc_workers,
            userless_methods=USERLESS_METHODS,
        ),
        [lambda server: pb_grpc.add_TaskServiceServicer_to_server(servicer, server)],
        address=address,
    )
    enabled = settings.worker_enabled if run_worker is None else run_worker
    worker = start_worker(app) if enabled else None
    return TasksServer(app=app, grpc=running, worker=worker)

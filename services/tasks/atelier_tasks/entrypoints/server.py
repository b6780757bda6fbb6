"""Starting the tasks gRPC server (and, switchable, the worker loop) from a wired TasksContainer."""

from __future__ import annotations

import logging

from atelier_common.grpc_server import ServiceServer, start_grpc_service
from atelier_common.lifecycle import BackgroundLoop, start_background

from atelier.tasks.v1 import tasks_pb2_grpc as pb_grpc
from atelier_tasks.bootstrap import TasksContainer
from atelier_tasks.entrypoints.grpc_api import SERVICE_NAME, USERLESS_METHODS, TaskServicer

log = logging.getLogger("atelier.tasks")


def start_worker(app: TasksContainer, owner: str | None = None) -> BackgroundLoop:
    worker = app.new_worker(owner)
    idle = app.settings.worker_idle_seconds
    return start_background(
        "tasks-worker", lambda stop: worker.run_forever(stop, idle), join_seconds=10
    )


TasksServer = ServiceServer[TasksContainer]


def start_server(
    app: TasksContainer, address: str, *, run_worker: bool | None = None
) -> TasksServer:
    servicer = TaskServicer(app.use_cases, app.clock)
    running = start_grpc_service(
        app.settings,
        address,
        service_name=SERVICE_NAME,
        error_domain="tasks.atelier",
        userless_methods=USERLESS_METHODS,
        register=lambda server: pb_grpc.add_TaskServiceServicer_to_server(servicer, server),
    )
    enabled = app.settings.worker_enabled if run_worker is None else run_worker
    return TasksServer(app, running, (start_worker(app),) if enabled else ())

"""The ``atelier-tasks`` CLI as a real process: migrate, serve (health, reflection), SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import grpc
from atelier_common.context import outgoing_metadata
from grpc_health.v1 import health_pb2, health_pb2_grpc

from atelier.tasks.v1 import tasks_pb2 as pb
from atelier.tasks.v1 import tasks_pb2_grpc as pb_grpc

CLI = [sys.executable, "-m", "atelier_tasks.entrypoints.cli"]


def test_migrate_then_serve_answers_health_and_stops_on_sigterm(
    database_url: str, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "TASKS_DATABASE_URL": database_url,
        "ATELIER_DATA_DIR": str(tmp_path),
        "ATELIER_INTERNAL_TOKEN": "cli-token",
        "TASKS_GRPC_PORT": "0",
        "BILLING_ADDRESS": "127.0.0.1:9",  # nothing there: reads must not need billing
    }
    migrated = subprocess.run(
        [*CLI, "migrate"], env=env, capture_output=True, text=True, timeout=60
    )
    assert migrated.returncode == 0, migrated.stderr
    log = (tmp_path / "serve.log").open("w")
    server = subprocess.Popen(
        [*CLI, "serve"], env=env, stdout=subprocess.PIPE, stderr=log, text=True
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        assert "listening on" in line, (tmp_path / "serve.log").read_text()
        port = int(line.rsplit(":", 1)[1])
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            health = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service="atelier.tasks.v1.TaskService"), timeout=10
            )
            assert health.status == health_pb2.HealthCheckResponse.SERVING
            stub = pb_grpc.TaskServiceStub(channel)
            md = outgoing_metadata("cli-token", user_id="u1")
            listed = stub.ListTasks(pb.ListTasksRequest(), metadata=md, timeout=10)
            assert list(listed.tasks) == []
            try:
                stub.ListTasks(pb.ListTasksRequest(), metadata=outgoing_metadata("wrong", "u1"))
                raise AssertionError("a wrong internal token was accepted")
            except grpc.RpcError as err:
                assert err.code() is grpc.StatusCode.UNAUTHENTICATED
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 0
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        log.close()

"""Issue 15 #5: ``TASKS_PROCESSES=2`` — two processes answer on one port (SO_REUSEPORT), the
supervisor stops both on SIGTERM, and exits non-zero when one of them dies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from atelier_common.context import outgoing_metadata
from atelier_common.grpc_server import PID_KEY

from atelier.tasks.v1 import tasks_pb2 as pb
from atelier.tasks.v1 import tasks_pb2_grpc as pb_grpc

CLI = [sys.executable, "-m", "atelier_tasks.entrypoints.cli"]
TOKEN = "processes-token"
MAX_CONNECTIONS = 200  # new connections tried until both processes answered (2^-199 to miss)


@pytest.fixture
def two_processes(database_url: str, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], int]]:
    env = {
        **os.environ,
        "TASKS_DATABASE_URL": database_url,
        "ATELIER_DATA_DIR": str(tmp_path),
        "ATELIER_INTERNAL_TOKEN": TOKEN,
        "TASKS_GRPC_PORT": "0",  # chosen once by the supervisor, shared by both
        "TASKS_PROCESSES": "2",
        "BILLING_ADDRESS": "127.0.0.1:9",
    }
    log = (tmp_path / "serve.log").open("w")
    server = subprocess.Popen(
        [*CLI, "serve", "--migrate", "--no-worker"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        assert "listening on" in line, (tmp_path / "serve.log").read_text()
        yield server, int(line.rsplit(":", 1)[1])
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        log.close()


def _answering_pids(port: int) -> set[int]:
    """The processes that answered ListTasks, each call on a new connection."""
    pids: set[int] = set()
    md = outgoing_metadata(TOKEN, user_id="u1")
    for _ in range(MAX_CONNECTIONS):
        options = [("grpc.use_local_subchannel_pool", 1)]  # a new connection each time
        with grpc.insecure_channel(f"127.0.0.1:{port}", options=options) as channel:
            stub = pb_grpc.TaskServiceStub(channel)
            listed, call = stub.ListTasks.with_call(pb.ListTasksRequest(), metadata=md, timeout=10)
            assert list(listed.tasks) == []
            pids.update(int(v) for k, v in call.trailing_metadata() or () if k == PID_KEY)
        if len(pids) == 2:
            break
    return pids


def test_two_processes_answer_on_one_port_and_stop_on_sigterm(
    two_processes: tuple[subprocess.Popen[str], int],
) -> None:
    server, port = two_processes
    pids = _answering_pids(port)
    assert len(pids) == 2 and server.pid not in pids
    server.send_signal(signal.SIGTERM)
    assert server.wait(timeout=60) == 0
    for pid in pids:  # both children are gone (reaped by the supervisor)
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_a_dead_process_stops_the_service_with_a_failure(
    two_processes: tuple[subprocess.Popen[str], int],
) -> None:
    server, port = two_processes
    pids = _answering_pids(port)
    os.kill(min(pids), signal.SIGKILL)
    assert server.wait(timeout=60) != 0
    with pytest.raises(ProcessLookupError):
        os.kill(max(pids), 0)

"""Several processes of one service on one port (``BILLING_PROCESSES``, ``TASKS_PROCESSES``,
``GATEWAY_PROCESSES``): ``serve`` becomes a small supervisor that starts N copies of itself, each
a fresh interpreter binding the same address with ``SO_REUSEPORT`` (the kernel spreads new
connections over them), so a bigger machine is used without a load balancer.

The supervisor forwards SIGTERM/SIGINT to every child and waits for them (each drains as one
process would); if a child dies on its own it stops the others and exits non-zero, so whatever
restarts the service (compose, systemd) sees the failure. Children die with it (Linux
``PR_SET_PDEATHSIG``). Port 0 is reserved once here — a bound, never-listening ``SO_REUSEPORT``
socket held for the supervisor's life — so the children share the port it got.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import IO

log = logging.getLogger("atelier.processes")

STOP_GRACE_SECONDS = 20.0
READY_TIMEOUT_SECONDS = 120.0
PROCESS_INDEX_ENV = "ATELIER_PROCESS_INDEX"  # 0..N-1 in each child


@dataclass(frozen=True, slots=True)
class ProcessPlan:
    """What the supervisor starts: ``python -m module *args`` ``count`` times with ``env``
    (which must make each child serve as one process: ``<SERVICE>_PROCESSES=1``)."""

    service: str
    module: str
    args: Sequence[str]
    count: int
    env: Mapping[str, str]
    # The child prints "<service> ... listening on host:port" first when it is ready (the gRPC
    # services): the supervisor waits for every child's line and prints one for all.
    ready_line: bool = True


def reserve_port(host: str, port: int) -> tuple[socket.socket | None, int]:
    """Port 0 is chosen here, once, for every child: a bound ``SO_REUSEPORT`` socket that never
    listens keeps the port ours (it takes no connections). A fixed port needs nothing."""
    if port != 0:
        return None, port
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, 0))
    return sock, int(sock.getsockname()[1])


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    if sys.platform.startswith("linux"):
        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _copy_lines(source: IO[str], sink: IO[str]) -> None:
    for line in source:
        sink.write(line)
        sink.flush()


def supervise(plan: ProcessPlan) -> int:
    """Start the children, wait until a signal or a child's death, stop them all."""
    stop = threading.Event()
    previous = {
        sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)
    }
    children: list[subprocess.Popen[str]] = []
    try:
        for index in range(plan.count):
            children.append(
                subprocess.Popen(
                    [sys.executable, "-m", plan.module, *plan.args],
                    env={**plan.env, PROCESS_INDEX_ENV: str(index)},
                    stdout=subprocess.PIPE if plan.ready_line else None,
                    text=True,
                    # Its own session: a terminal's Ctrl-C reaches the supervisor only, which
                    # stops the children in order.
                    start_new_session=True,
                    preexec_fn=_die_with_parent,
                )
            )
        if plan.ready_line and not _await_ready(plan, children, stop):
            return _stop_all(children, failed=True)
        log.info(
            "processes started",
            extra={"fields": {"service": plan.service, "pids": [c.pid for c in children]}},
        )
        while not stop.wait(0.5):
            dead = [c for c in children if c.poll() is not None]
            if dead:
                log.error(
                    "a process died; stopping the others",
                    extra={"fields": {"pid": dead[0].pid, "status": dead[0].returncode}},
                )
                return _stop_all(children, failed=True)
        return _stop_all(children, failed=False)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _await_ready(
    plan: ProcessPlan, children: list[subprocess.Popen[str]], stop: threading.Event
) -> bool:
    """Every child's first line (its "listening on" line), then one line for all of them; the
    rest of their output is passed through."""
    first: str | None = None
    for child in children:
        assert child.stdout is not None
        line = child.stdout.readline()
        if not line or stop.is_set():
            return False
        first = first or line
        threading.Thread(target=_copy_lines, args=(child.stdout, sys.stdout), daemon=True).start()
    if first is not None:
        print(first.rstrip("\n"), flush=True)
    return True


def _stop_all(children: list[subprocess.Popen[str]], *, failed: bool) -> int:
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    worst = 1 if failed else 0
    for child in children:
        try:
            status = child.wait(STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            child.kill()
            status = child.wait()
        if status != 0:
            worst = 1
    return worst


def process_index() -> int:
    """This process's index among its service's processes (0 when it runs alone)."""
    return int(os.environ.get(PROCESS_INDEX_ENV, "0") or 0)


def shares_port() -> bool:
    """Whether this process is one of several serving one port (started by :func:`supervise`):
    it binds with ``SO_REUSEPORT``."""
    return PROCESS_INDEX_ENV in os.environ


def child_environment(
    base: Mapping[str, str], *, processes_env: str, port_env: str, port: int
) -> dict[str, str]:
    """A child serves as one process on the shared port."""
    return {**base, processes_env: "1", port_env: str(port), "PYTHONUNBUFFERED": "1"}


def serve_processes(
    *,
    service: str,
    module: str,
    args: Sequence[str],
    count: int,
    host: str,
    port: int,
    processes_env: str,
    port_env: str,
    ready_line: bool = True,
) -> int:
    """``serve`` with ``count`` > 1: reserve the port if it is 0, then supervise the children."""
    reservation, port = reserve_port(host, port)
    log.info(
        "serving with several processes",
        extra={"fields": {"service": service, "address": f"{host}:{port}", "processes": count}},
    )
    try:
        env = child_environment(
            os.environ, processes_env=processes_env, port_env=port_env, port=port
        )
        return supervise(ProcessPlan(service, module, args, count, env, ready_line))
    finally:
        if reservation is not None:
            reservation.close()

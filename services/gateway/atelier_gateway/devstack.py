"""``make run``: the whole product on this machine — billing, tasks and the gateway as three
processes on the embedded default (SQLite under ``ATELIER_DATA_DIR``, local adapters).

Every setting of the three services' settings classes is read from the environment as usual;
this supervisor only fills in what must agree between them (the internal credential, addresses,
the public URL), asks each service whether its configuration can start (``check-config``: a
market without its credentials, or an adapter this build lacks, stops here with one line
naming every setting to fix), migrates the three databases, starts the services, waits until the
gateway is ready, prints its URL, and on Ctrl-C (or SIGTERM) stops all three and waits for them.

It starts the other services through their command lines, never by importing them.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass

READY_TIMEOUT_SECONDS = 90.0
STOP_GRACE_SECONDS = 15.0


@dataclass(frozen=True, slots=True)
class Service:
    name: str
    module: str  # the service's CLI module, run with ``python -m``


SERVICES = (
    Service("billing", "atelier_billing.entrypoints.cli"),
    Service("tasks", "atelier_tasks.entrypoints.cli"),
    Service("gateway", "atelier_gateway.entrypoints.cli"),
)


def stack_environment(base: Mapping[str, str]) -> dict[str, str]:
    """The environment shared by the three processes: explicit settings win."""
    env = dict(base)
    env.setdefault("ATELIER_DATA_DIR", "var")
    env.setdefault("MARKET", "local")
    # A fresh credential per run unless one is configured: never the well-known default.
    env.setdefault("ATELIER_INTERNAL_TOKEN", secrets.token_urlsafe(32))
    billing_port = env.setdefault("BILLING_GRPC_PORT", "50051")
    tasks_port = env.setdefault("TASKS_GRPC_PORT", "50052")
    env.setdefault("BILLING_ADDRESS", f"127.0.0.1:{billing_port}")
    env.setdefault("TASKS_ADDRESS", f"127.0.0.1:{tasks_port}")
    gateway_port = env.setdefault("GATEWAY_PORT", "8080")
    env.setdefault("GATEWAY_PUBLIC_URL", f"http://127.0.0.1:{gateway_port}")
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def configuration_problem(env: Mapping[str, str]) -> str | None:
    """Each service's own start-up check, run at once; their complaints as one line, or None."""
    checks = {
        service.name: subprocess.Popen(
            [sys.executable, "-m", service.module, "check-config"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for service in SERVICES
    }
    problems: list[str] = []
    advice = "; use MARKET=local or MARKET=global"
    advise = False
    for name, proc in checks.items():
        _, err = proc.communicate()
        if proc.returncode != 0:
            lines = [line for line in err.splitlines() if line.strip()]
            said = lines[-1] if lines else f"exit status {proc.returncode}"
            said = said.split(": cannot start: ", 1)[-1]
            if advice in said:  # said once for the three, at the end
                said, advise = said.replace(advice, ""), True
            problems.append(f"{name}: {said}")
    if not problems:
        return None
    market = env.get("MARKET", "local")
    return f"atelier: cannot start MARKET={market}: {'; '.join(problems)}{advice * advise}"


def _run_cli(service: Service, args: list[str], env: Mapping[str, str]) -> None:
    done = subprocess.run([sys.executable, "-m", service.module, *args], env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{service.name} {' '.join(args)} failed (exit {done.returncode})")


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/readyz", timeout=2) as reply:
            return bool(reply.status == 200)
    except (urllib.error.URLError, OSError):
        return False


class Supervisor:
    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = dict(env)
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.stopping = threading.Event()

    def start(self) -> None:
        for service in SERVICES:
            # Own process groups: Ctrl-C reaches only the supervisor, which stops them in order.
            self.procs[service.name] = subprocess.Popen(
                [sys.executable, "-m", service.module, "serve"],
                env=self.env,
                start_new_session=True,
            )

    def exited(self) -> list[str]:
        return [name for name, p in self.procs.items() if p.poll() is not None]

    def stop(self) -> int:
        """Stop the gateway first (no new requests), then tasks (its worker may still settle
        holds with billing), then billing; each gets a grace period before being killed."""
        worst = 0
        for name in ("gateway", "tasks", "billing"):
            proc = self.procs.get(name)
            if proc is None:
                continue
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(STOP_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                worst = 1
        return worst


def main() -> int:
    env = stack_environment(os.environ)
    url = env["GATEWAY_PUBLIC_URL"].rstrip("/")
    problem = configuration_problem(env)
    if problem:
        print(problem, file=sys.stderr, flush=True)
        return 2
    for service in SERVICES:
        _run_cli(service, ["migrate"], env)
    supervisor = Supervisor(env)

    def on_signal(signum: int, _frame: object) -> None:
        supervisor.stopping.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    supervisor.start()
    ready_by = time.monotonic() + READY_TIMEOUT_SECONDS
    announced = False
    while not supervisor.stopping.is_set():
        gone = supervisor.exited()
        if gone:
            print(f"atelier: {', '.join(gone)} stopped unexpectedly; stopping", file=sys.stderr)
            supervisor.stop()
            return 1
        if not announced:
            if _ready(url):
                print(f"Atelier is running: {url}  (Ctrl-C stops it)", flush=True)
                announced = True
            elif time.monotonic() > ready_by:
                print("atelier: the gateway did not become ready; stopping", file=sys.stderr)
                supervisor.stop()
                return 1
        supervisor.stopping.wait(0.5)
    print("atelier: stopping billing, tasks and gateway ...", file=sys.stderr, flush=True)
    code = supervisor.stop()
    print("atelier: stopped", file=sys.stderr, flush=True)
    return code


if __name__ == "__main__":
    raise SystemExit(main())

"""Running the real gateway application on port 0 in a background event loop."""

from __future__ import annotations

import asyncio
import io
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from atelier_gateway.adapters.migrate import migrate
from atelier_gateway.application.ports import (
    BillingAccounts,
    BillingGateway,
    OneTimeCodes,
    Sms,
    TasksGateway,
)
from atelier_gateway.bootstrap import GatewayContainer, build_container
from atelier_gateway.entrypoints.http.app import create_app
from atelier_gateway.settings import GatewaySettings
from atelier_ports.clock import Clock


@dataclass
class RunningGateway:
    url: str
    port: int
    container: GatewayContainer
    app: web.Application
    _loop: asyncio.AbstractEventLoop
    _thread: threading.Thread
    _runner: web.AppRunner

    def stop(self) -> None:
        stopping = asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop)
        try:
            stopping.result(15)
        except TimeoutError:
            raise TimeoutError(f"the gateway did not stop in 15 s:\n{self._pending()}") from None
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(15)
        self._loop.close()

    def _pending(self) -> str:
        """What the gateway's loop is still doing: each task's stack, for a shutdown that hangs."""

        async def dump() -> str:
            out = io.StringIO()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.print_stack(file=out)
            return out.getvalue()

        return asyncio.run_coroutine_threadsafe(dump(), self._loop).result(5)


def reserve_socket() -> socket.socket:
    """A listening socket on a free port, so other services can be told the URL first."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    sock.setblocking(False)
    return sock


def start_gateway(
    settings: GatewaySettings,
    sock: socket.socket | None = None,
    *,
    clock: Clock | None = None,
    billing_accounts: BillingAccounts | None = None,
    billing_gateway: BillingGateway | None = None,
    tasks_gateway: TasksGateway | None = None,
    sms: Sms | None = None,
    one_time_codes: OneTimeCodes | None = None,
) -> RunningGateway:
    """The real wiring (``build_container``) with the given parts swapped, served on port 0 (or on
    ``sock``); the overrides are typed, so a misspelt one is a type error."""
    container = build_container(
        settings,
        clock=clock,
        billing_accounts=billing_accounts,
        billing_gateway=billing_gateway,
        tasks_gateway=tasks_gateway,
        sms=sms,
        one_time_codes=one_time_codes,
    )
    migrate(container.engine)
    app = create_app(container)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="gateway-loop", daemon=True)
    thread.start()

    async def start() -> tuple[web.AppRunner, int]:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        if sock is not None:
            await web.SockSite(runner, sock).start()
            return runner, int(sock.getsockname()[1])
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        server: Any = site._server
        return runner, int(server.sockets[0].getsockname()[1])

    runner, port = asyncio.run_coroutine_threadsafe(start(), loop).result(15)
    return RunningGateway(
        url=f"http://127.0.0.1:{port}",
        port=port,
        container=container,
        app=app,
        _loop=loop,
        _thread=thread,
        _runner=runner,
    )


def gateway_settings(data_dir: str, database_url: str, **env: Any) -> GatewaySettings:
    values: dict[str, Any] = {
        "ATELIER_DATA_DIR": data_dir,
        "GATEWAY_DATABASE_URL": database_url,
        "GATEWAY_JWT_SECRET": "test-secret-" + "x" * 40,
        "ATELIER_INTERNAL_TOKEN": "test-internal-token",
        # Nothing listens here unless a test starts a service and says so.
        "BILLING_ADDRESS": "127.0.0.1:1",
        "TASKS_ADDRESS": "127.0.0.1:1",
    }
    values.update(env)
    return GatewaySettings(**values)


Factory = Callable[..., RunningGateway]


def start_tasks_server(database_url: str, **env: Any) -> Any:
    """The real tasks service (gRPC on port 0, with its worker unless ``run_worker=False``),
    migrated first; ``moderation=`` replaces the Moderation adapter (a test double of the
    port); the other keywords are settings by their environment names."""
    run_worker = bool(env.pop("run_worker", True))
    moderation = env.pop("moderation", None)
    from atelier_tasks.adapters.db.migrate import upgrade
    from atelier_tasks.bootstrap import build_container
    from atelier_tasks.entrypoints.server import start_server
    from atelier_tasks.settings import TasksSettings

    values: dict[str, Any] = {"TASKS_DATABASE_URL": database_url, "LOCAL_GENERATOR_DELAY_MS": 0}
    values.update(env)
    app = build_container(TasksSettings(**values), moderation=moderation)
    upgrade(app.engine)
    return start_server(app, "127.0.0.1:0", run_worker=run_worker)

"""``atelier-gateway serve | migrate | promote-admin EMAIL|PHONE | check-config``."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from aiohttp import web
from atelier_common.aio import new_event_loop
from atelier_common.cli import Command, migrate_database, run_cli
from atelier_common.db import normalise_url
from atelier_common.processes import serve_processes, shares_port
from atelier_common.startup import ConfigurationError
from sqlalchemy import create_engine, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from atelier_gateway.adapters.migrate import migrate
from atelier_gateway.bootstrap import build_container
from atelier_gateway.domain.errors import UserNotFound
from atelier_gateway.settings import GatewaySettings
from atelier_ports.problems import InvalidArgument

log = logging.getLogger("atelier.gateway")
PROGRAM = "atelier-gateway"
MODULE = "atelier_gateway.entrypoints.cli"


def existing_database(settings: GatewaySettings) -> str:
    """The gateway database an operator command works on, as shown to people (no password).

    Refuses — saying where it looked — when there is none there, instead of creating an empty one:
    run from another directory, the default ``var/gateway.db`` is a different file."""
    url = make_url(normalise_url(settings.database_url()))
    shown = url.render_as_string(hide_password=True)
    source = (
        "GATEWAY_DATABASE_URL"
        if settings.gateway_database_url
        else f"ATELIER_DATA_DIR={settings.data_dir} in {os.getcwd()}"
    )
    hint = (
        "run it where the gateway runs (the directory of `make run`), "
        "or set GATEWAY_DATABASE_URL or ATELIER_DATA_DIR"
    )
    if url.get_backend_name() == "sqlite":
        path = url.database or ""
        if path in ("", ":memory:") or not Path(path).is_file():
            raise ConfigurationError(
                f"{PROGRAM}: no gateway database at {path or shown} ({source}); {hint}"
            )
    engine = create_engine(url)
    try:
        migrated = inspect(engine).has_table("users")
    except SQLAlchemyError:
        raise ConfigurationError(
            f"{PROGRAM}: cannot open the gateway database {shown} ({source}); {hint}"
        ) from None
    finally:
        engine.dispose()
    if not migrated:
        raise ConfigurationError(
            f"{PROGRAM}: the gateway database {shown} ({source}) has no users table; "
            f"run `{PROGRAM} migrate` first, or {hint}"
        )
    return shown


def _migrate(settings: GatewaySettings, _args: argparse.Namespace) -> int:
    return migrate_database("gateway", settings.database_url(), migrate)


def _promote_admin(settings: GatewaySettings, args: argparse.Namespace) -> int:
    database = existing_database(settings)
    container = build_container(settings)
    try:
        user = container.promote_admin(args.email)
    except (UserNotFound, InvalidArgument) as e:
        print(f"error: {e} (in {database})", file=sys.stderr)
        return 1
    finally:
        container.close()
    print(f"{user.email or user.phone} ({user.id}) is now an admin; new tokens carry the role")
    return 0


def _email_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("email", metavar="EMAIL|PHONE", help="the user's email or phone number")


COMMANDS: tuple[Command[GatewaySettings], ...] = (
    Command("serve", "run the HTTP gateway", lambda settings, _args: serve(settings)),
    Command("migrate", "create or upgrade the gateway database", _migrate),
    Command("promote-admin", "give a user the admin role", _promote_admin, _email_argument),
)


def main(argv: list[str] | None = None) -> int:
    return run_cli(PROGRAM, __doc__, GatewaySettings, COMMANDS, argv)


def serve(settings: GatewaySettings) -> int:
    if settings.processes > 1:
        # A generated JWT secret is made here, once: processes racing to make their own would
        # each sign with a different one.
        settings.jwt_secret()
        return serve_processes(
            service="gateway",
            module=MODULE,
            args=["serve"],
            count=settings.processes,
            host=settings.gateway_host,
            port=settings.gateway_port,
            processes_env="GATEWAY_PROCESSES",
            port_env="GATEWAY_PORT",
            ready_line=False,  # ready when /readyz says so
        )
    from atelier_gateway.entrypoints.http.app import create_app

    container = build_container(settings)
    app = create_app(container)
    log.info(
        "gateway listening",
        extra={"fields": {"url": settings.gateway_public_url, "port": settings.gateway_port}},
    )
    web.run_app(
        app,
        host=settings.gateway_host,
        port=settings.gateway_port,
        print=None,
        access_log=None,
        handle_signals=True,
        reuse_port=shares_port() or None,
        loop=new_event_loop(),
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""``atelier-gateway serve | migrate | promote-admin EMAIL | check-config``."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from aiohttp import web
from atelier_common.db import normalise_url
from atelier_common.logs import configure_logging
from atelier_common.startup import ConfigurationError, check_startup, load_settings, report
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


def existing_database(settings: GatewaySettings) -> str:
    """The gateway database an operator command works on, as shown to people (no password).

    Refuses — saying where it looked — when there is none there, instead of creating an empty one:
    run from another directory, the default ``var/gateway.db`` is a different file."""
    url = make_url(normalise_url(settings.database_url()))
    shown = url.render_as_string(hide_password=True)
    source = (
        "GATEWAY_DATABASE_URL"
        if settings.gateway_database_url
        else f"ATELIER_DATA_DIR={settings.atelier_data_dir} in {os.getcwd()}"
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROGRAM, description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="run the HTTP gateway")
    sub.add_parser("migrate", help="create or upgrade the gateway database")
    promote = sub.add_parser("promote-admin", help="give a user the admin role")
    promote.add_argument("email")
    sub.add_parser("check-config", help="check the configuration can start, and exit")
    args = parser.parse_args(argv)

    try:
        settings = load_settings(GatewaySettings, PROGRAM)
        check_startup(settings, PROGRAM)
        database = existing_database(settings) if args.command == "promote-admin" else ""
    except ConfigurationError as e:
        return report(e)
    if args.command == "check-config":
        print(f"{PROGRAM}: configuration ok (MARKET={settings.market})")
        return 0
    configure_logging(settings.gateway_log_level)
    if args.command == "migrate":
        container = build_container(settings)
        migrate(container.engine)
        container.close()
        print("gateway database migrated")
        return 0
    if args.command == "promote-admin":
        container = build_container(settings)
        try:
            user = container.promote_admin(args.email)
        except (UserNotFound, InvalidArgument) as e:
            print(f"error: {e} (in {database})", file=sys.stderr)
            return 1
        finally:
            container.close()
        print(f"{user.email} ({user.id}) is now an admin; new tokens carry the role")
        return 0
    return serve(settings)


def serve(settings: GatewaySettings) -> int:
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
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

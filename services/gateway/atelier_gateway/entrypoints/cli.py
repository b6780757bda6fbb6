"""``atelier-gateway serve | migrate | promote-admin EMAIL``."""

from __future__ import annotations

import argparse
import logging
import sys

from aiohttp import web
from atelier_common.logs import configure_logging

from atelier_gateway.adapters.migrate import migrate
from atelier_gateway.bootstrap import build_container
from atelier_gateway.domain.errors import UserNotFound
from atelier_gateway.settings import GatewaySettings
from atelier_ports.problems import InvalidArgument

log = logging.getLogger("atelier.gateway")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="atelier-gateway", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="run the HTTP gateway")
    sub.add_parser("migrate", help="create or upgrade the gateway database")
    promote = sub.add_parser("promote-admin", help="give a user the admin role")
    promote.add_argument("email")
    args = parser.parse_args(argv)

    settings = GatewaySettings()
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
            user = container.auth.promote_admin(args.email)
        except (UserNotFound, InvalidArgument) as e:
            print(f"error: {e}", file=sys.stderr)
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

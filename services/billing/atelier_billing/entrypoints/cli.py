"""``atelier-billing``: serve, migrate, check-ledger, expire, check-config."""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from atelier_common.logs import configure_logging
from atelier_common.startup import ConfigurationError, check_startup, load_settings, report

from atelier_billing.adapters.persistence.migrate import upgrade
from atelier_billing.bootstrap import build_container as build_app
from atelier_billing.entrypoints.server import start_server
from atelier_billing.settings import BillingSettings

PROGRAM = "atelier-billing"


def _migrate(settings: BillingSettings) -> int:
    app = build_app(settings)
    try:
        upgrade(app.engine)
    finally:
        app.close()
    print(f"billing database migrated ({app.engine.url.render_as_string(hide_password=True)})")
    return 0


def _serve(settings: BillingSettings, migrate_first: bool) -> int:
    app = build_app(settings)
    if migrate_first:
        upgrade(app.engine)
    address = f"{settings.grpc_host}:{settings.grpc_port}"
    server = start_server(app, address)
    print(f"billing gRPC listening on {settings.grpc_host}:{server.port}", flush=True)
    stopped = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopped.set())
    stopped.wait()
    server.stop()
    return 0


def _check_ledger(settings: BillingSettings) -> int:
    app = build_app(settings)
    try:
        results = app.use_cases.check_ledger()
    finally:
        app.close()
    bad = [r for r in results if not r.ok]
    for result in bad:
        for problem in result.problems:
            print(f"{result.user_id}: {problem}")
    print(f"check-ledger: {len(results)} accounts, {len(bad)} inconsistent")
    return 1 if bad else 0


def _expire(settings: BillingSettings) -> int:
    app = build_app(settings)
    try:
        report = app.use_cases.run_expiry()
    finally:
        app.close()
    print(
        f"expired {report.expired_grants} grants ({report.expired_credits} credits), "
        f"{report.expired_orders} orders, {report.expired_memberships} memberships"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROGRAM, description="Atelier billing service")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the gRPC server (and the expiry loop)")
    serve.add_argument("--migrate", action="store_true", help="apply migrations first")
    sub.add_parser("migrate", help="apply database migrations")
    sub.add_parser("check-ledger", help="prove every balance equals what the ledger implies")
    sub.add_parser("expire", help="expire due grants, pending orders and memberships once")
    sub.add_parser("check-config", help="check the configuration can start, and exit")
    args = parser.parse_args(argv)
    try:
        settings = load_settings(BillingSettings, PROGRAM)
        check_startup(settings, PROGRAM)
    except ConfigurationError as e:
        return report(e)
    if args.command == "check-config":
        print(f"{PROGRAM}: configuration ok (MARKET={settings.market})")
        return 0
    configure_logging(settings.log_level)
    if args.command == "serve":
        return _serve(settings, args.migrate)
    if args.command == "migrate":
        return _migrate(settings)
    if args.command == "check-ledger":
        return _check_ledger(settings)
    return _expire(settings)


if __name__ == "__main__":
    sys.exit(main())

"""``atelier-billing``: serve, migrate, check-ledger, expire, check-config."""

from __future__ import annotations

import argparse
import sys

from atelier_common.cli import (
    Command,
    migrate_database,
    migrate_quietly,
    run_cli,
    serve_until_stopped,
)
from atelier_common.processes import serve_processes

from atelier_billing.adapters.persistence.migrate import upgrade
from atelier_billing.bootstrap import build_container
from atelier_billing.entrypoints.server import start_server
from atelier_billing.settings import BillingSettings

PROGRAM = "atelier-billing"
MODULE = "atelier_billing.entrypoints.cli"


def _migrate(settings: BillingSettings, _args: argparse.Namespace) -> int:
    return migrate_database("billing", settings.resolved_database_url(), upgrade)


def _serve(settings: BillingSettings, args: argparse.Namespace) -> int:
    if settings.processes > 1:
        if args.migrate:
            migrate_quietly(settings.resolved_database_url(), upgrade)
        return serve_processes(
            service="billing",
            module=MODULE,
            args=["serve"],
            count=settings.processes,
            host=settings.grpc_host,
            port=settings.grpc_port,
            processes_env="BILLING_PROCESSES",
            port_env="BILLING_GRPC_PORT",
        )
    app = build_container(settings)
    if args.migrate:
        upgrade(app.engine)
    server = start_server(app, f"{settings.grpc_host}:{settings.grpc_port}")
    return serve_until_stopped("billing", settings.grpc_host, server)


def _check_ledger(settings: BillingSettings, _args: argparse.Namespace) -> int:
    app = build_container(settings)
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


def _expire(settings: BillingSettings, _args: argparse.Namespace) -> int:
    app = build_container(settings)
    try:
        report = app.use_cases.run_expiry()
    finally:
        app.close()
    print(
        f"expired {report.expired_grants} grants ({report.expired_credits} credits), "
        f"{report.expired_orders} orders, {report.expired_memberships} memberships"
    )
    return 0


def _serve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--migrate", action="store_true", help="apply migrations first")


COMMANDS: tuple[Command[BillingSettings], ...] = (
    Command("serve", "run the gRPC server (and the expiry loop)", _serve, _serve_arguments),
    Command("migrate", "apply database migrations", _migrate),
    Command("check-ledger", "prove every balance equals what the ledger implies", _check_ledger),
    Command("expire", "expire due grants, pending orders and memberships once", _expire),
)


def main(argv: list[str] | None = None) -> int:
    return run_cli(PROGRAM, "Atelier billing service", BillingSettings, COMMANDS, argv)


if __name__ == "__main__":
    sys.exit(main())

"""Starting billing's gRPC server (and its periodic expiry loop) from a wired BillingContainer."""

from __future__ import annotations

import logging
import threading
from dataclasses import asdict
from datetime import timedelta

from atelier_common.cluster import cluster_turn
from atelier_common.grpc_server import ServiceServer, start_grpc_service
from atelier_common.lifecycle import start_background

from atelier.billing.v1 import billing_pb2_grpc as pb_grpc
from atelier_billing.application.expiry import RunExpiry
from atelier_billing.application.reconcile import ReconcilePendingOrders
from atelier_billing.bootstrap import BillingContainer
from atelier_billing.entrypoints.grpc_api import SERVICE_NAME, USERLESS_METHODS, BillingServicer
from atelier_ports.clock import Clock, SystemClock

log = logging.getLogger("atelier.billing")


BillingServer = ServiceServer[BillingContainer]


# Processes and replicas all run the loop; one at a time does a round (the work is idempotent
# under concurrency too: tests/billing/integration/test_expiry_concurrency.py).
EXPIRY_TURN = "atelier.billing.expiry"


def _expiry_loop(app: BillingContainer, stop: threading.Event, interval: float) -> None:
    while not stop.wait(interval):
        try:
            with cluster_turn(app.engine, EXPIRY_TURN) as mine:
                if mine:
                    _expiry_round(app)
        except Exception:
            log.exception("expiry run failed; will retry")


def _expiry_round(app: BillingContainer) -> None:
    """One round: the reconciliation sweep (provider calls), then expiry."""
    min_age = timedelta(seconds=app.settings.reconcile_after_seconds)
    reconciled = app.use_cases.reconcile_pending_orders(ReconcilePendingOrders(min_age))
    if reconciled:
        log.info("reconciled orders", extra={"fields": {"changed": reconciled}})
    report = app.use_cases.run_expiry(RunExpiry())
    if any((report.expired_grants, report.expired_orders, report.expired_memberships)):
        log.info("expiry", extra={"fields": asdict(report)})


def start_server(
    app: BillingContainer,
    address: str,
    *,
    clock: Clock | None = None,
    run_expiry_loop: bool = True,
) -> BillingServer:
    servicer = BillingServicer(app.use_cases, clock or SystemClock())
    running = start_grpc_service(
        app.settings,
        address,
        service_name=SERVICE_NAME,
        error_domain="billing.atelier",
        userless_methods=USERLESS_METHODS,
        register=lambda server: pb_grpc.add_BillingServiceServicer_to_server(servicer, server),
    )
    if not run_expiry_loop:
        return BillingServer(app, running)
    interval = app.settings.expiry_interval_seconds
    expiry = start_background(
        "billing-expiry", lambda stop: _expiry_loop(app, stop, interval), join_seconds=5
    )
    return BillingServer(app, running, (expiry,))

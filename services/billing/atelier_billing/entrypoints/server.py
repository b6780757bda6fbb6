"""Starting billing's gRPC server (and its periodic expiry loop) from a wired BillingContainer."""

from __future__ import annotations

import logging
import threading
from dataclasses import asdict, dataclass
from datetime import timedelta

from atelier_common.grpc_server import RunningServer, ServerConfig, build_server

from atelier.billing.v1 import billing_pb2_grpc as pb_grpc
from atelier_billing.application.expiry import RunExpiry
from atelier_billing.application.reconcile import ReconcilePendingOrders
from atelier_billing.bootstrap import BillingContainer
from atelier_billing.entrypoints.grpc_api import SERVICE_NAME, USERLESS_METHODS, BillingServicer
from atelier_ports.clock import Clock, SystemClock

log = logging.getLogger("atelier.billing")


@dataclass
class BillingServer:
    app: BillingContainer
    grpc: RunningServer
    _stop: threading.Event
    _expiry: threading.Thread | None

    @property
    def port(self) -> int:
        return self.grpc.port

    def stop(self) -> None:
        self._stop.set()
        if self._expiry is not None:
            self._expiry.join(timeout=5)
        self.grpc.stop()
        self.app.close()


def _expiry_loop(app: BillingContainer, stop: threading.Event, interval: float) -> None:
    while not stop.wait(interval):
        try:
            min_age = timedelta(seconds=app.settings.reconcile_after_seconds)
            reconciled = app.use_cases.reconcile_pending_orders(ReconcilePendingOrders(min_age))
            if reconciled:
                log.info("reconciled orders", extra={"fields": {"changed": reconciled}})
            report = app.use_cases.run_expiry(RunExpiry())
            if any((report.expired_grants, report.expired_orders, report.expired_memberships)):
                log.info("expiry", extra={"fields": asdict(report)})
        except Exception:
            log.exception("expiry run failed; will retry")


def start_server(
    app: BillingContainer,
    address: str,
    *,
    clock: Clock | None = None,
    run_expiry_loop: bool = True,
) -> BillingServer:
    settings = app.settings
    servicer = BillingServicer(app.use_cases, clock or SystemClock())
    running = build_server(
        ServerConfig(
            service_names=(SERVICE_NAME,),
            internal_token=settings.internal_token.get_secret_value(),
            error_domain="billing.atelier",
            max_workers=settings.grpc_workers,
            userless_methods=USERLESS_METHODS,
        ),
        [lambda server: pb_grpc.add_BillingServiceServicer_to_server(servicer, server)],
        address=address,
    )
    stop = threading.Event()
    thread = None
    if run_expiry_loop:
        thread = threading.Thread(
            target=_expiry_loop,
            args=(app, stop, settings.expiry_interval_seconds),
            name="billing-expiry",
            daemon=True,
        )
        thread.start()
    return BillingServer(app=app, grpc=running, _stop=stop, _expiry=thread)

"""Running the real billing service in-process for tests: migrated database, gRPC on port 0."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from atelier_common.context import outgoing_metadata

from atelier.billing.v1 import billing_pb2_grpc
from atelier_billing.adapters.persistence.migrate import upgrade
from atelier_billing.bootstrap import BillingContainer, build_container
from atelier_billing.entrypoints.server import BillingServer, start_server
from atelier_billing.settings import BillingSettings

INTERNAL_TOKEN = "test-internal-token"


@dataclass
class RunningBilling:
    server: BillingServer
    internal_token: str

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def app(self) -> BillingContainer:
        return self.server.container

    def channel(self) -> grpc.Channel:
        return grpc.insecure_channel(self.address)

    def stub(self, channel: grpc.Channel) -> billing_pb2_grpc.BillingServiceStub:
        return billing_pb2_grpc.BillingServiceStub(channel)

    def metadata(self, user_id: str | None, role: str = "user") -> tuple[tuple[str, str], ...]:
        return outgoing_metadata(self.internal_token, user_id=user_id, role=role)

    def stop(self) -> None:
        self.server.stop()


def billing_settings(
    database_url: str, data_dir: Path | None = None, **overrides: Any
) -> BillingSettings:
    values: dict[str, Any] = {
        "BILLING_DATABASE_URL": database_url,
        "ATELIER_INTERNAL_TOKEN": INTERNAL_TOKEN,
        "BILLING_EXPIRY_INTERVAL_SECONDS": 3600,
    }
    if data_dir is not None:
        values["ATELIER_DATA_DIR"] = str(data_dir)
    values.update(overrides)
    return BillingSettings(**values)


def start_billing_server(database_url: str, **overrides: Any) -> RunningBilling:
    """Start billing on ``database_url`` (migrated first). ``overrides`` are settings by their
    environment names, e.g. ``SIGNUP_BONUS_CREDITS=37``, ``GATEWAY_PUBLIC_URL=...``.
    Keyword ``clock=`` passes a Clock to the wiring."""
    clock = overrides.pop("clock", None)
    settings = billing_settings(database_url, **overrides)
    app = build_container(settings, clock=clock)
    upgrade(app.engine)
    server = start_server(app, "127.0.0.1:0", clock=clock, run_expiry_loop=False)
    return RunningBilling(server=server, internal_token=INTERNAL_TOKEN)

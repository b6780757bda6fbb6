"""Billing with Stripe, for tests: the real service, Stripe's SDK, a local Stripe server and a
real webhook endpoint between them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from atelier.billing.v1 import billing_pb2 as pb
from atelier.billing.v1 import billing_pb2_grpc
from tests.billing.webhook_relay import WebhookRelay
from tests.support.billing_server import RunningBilling, start_billing_server
from tests.support.stripe_server import API_KEY, WEBHOOK_SECRET, FakeStripe


@dataclass
class Env:
    billing: RunningBilling
    stub: billing_pb2_grpc.BillingServiceStub
    stripe: FakeStripe

    def md(self, user: str = "u1") -> tuple[tuple[str, str], ...]:
        return self.billing.metadata(user)

    def order(self, item: str, user: str = "u1", key: str = "") -> pb.Order:
        result: pb.Order = self.stub.CreateOrder(
            pb.CreateOrderRequest(item_id=item, channel="stripe", request_id=key),
            metadata=self.md(user),
        ).order
        return result

    def get(self, order_id: str) -> pb.Order:
        result: pb.Order = self.stub.GetOrder(
            pb.GetOrderRequest(order_id=order_id), metadata=self.md()
        ).order
        return result

    def balance(self) -> pb.Balance:
        result: pb.Balance = self.stub.GetBalance(
            pb.GetBalanceRequest(), metadata=self.md()
        ).balance
        return result

    def session_of(self, order: pb.Order) -> str:
        result: str = next(
            s for s in self.stripe.sessions.values() if s["client_reference_id"] == order.id
        )["id"]
        return result

    def consistent(self) -> bool:
        return all(c.ok for c in self.billing.app.use_cases.check_ledger())


@contextmanager
def running_stripe_billing(database_url: str, tmp_path: Path) -> Iterator[Env]:
    """Billing on MARKET=global with the Stripe SDK pointed at a local Stripe server whose signed
    events reach billing through a real webhook endpoint; user u1 is set up as Ada."""
    relay = WebhookRelay()
    stripe = FakeStripe(webhook_url=f"{relay.url}/webhooks/stripe")
    billing = start_billing_server(
        database_url,
        ATELIER_DATA_DIR=str(tmp_path),
        MARKET="global",
        STRIPE_API_KEY=API_KEY,
        STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET,
        STRIPE_API_BASE=stripe.url,
    )
    relay.attach(billing)
    with billing.channel() as channel:
        stub = billing.stub(channel)
        stub.SetUpAccount(
            pb.SetUpAccountRequest(email="ada@example.com", name="Ada"),
            metadata=billing.metadata("u1"),
        )
        yield Env(billing, stub, stripe)
    relay.close()
    stripe.close()
    billing.stop()

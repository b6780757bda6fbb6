"""The PaymentProvider contract: every adapter passes the same suite, so they are
interchangeable by proof. A *driver* per adapter plays the customer and the vendor (paying,
producing the notification the vendor would send)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Protocol

import pytest

from atelier_billing.adapters.payments.local import LocalPaymentProvider
from atelier_billing.adapters.payments.stripe_provider import StripePaymentProvider
from atelier_billing.adapters.payments.wechatpay import WeChatPayProvider
from atelier_billing.application.ports.payments import (
    Checkout,
    CheckoutMode,
    CheckoutRequest,
    OrderRef,
    PaymentEventKind,
    PaymentProvider,
    PaymentState,
    RefundState,
)
from atelier_ports.clock import SystemClock
from atelier_ports.errors import InvalidNotification, ProviderRejected
from tests.support.stripe_server import API_KEY, WEBHOOK_SECRET, FakeStripe, sign
from tests.support.wechatpay_server import (
    MERCHANT_SERIAL,
    PUBLIC_KEY_ID,
    WeChatKeys,
    WeChatPayServer,
)


class Driver(Protocol):
    @property
    def provider(self) -> PaymentProvider: ...  # the adapter under test, typed as its port

    def pay(self, request: CheckoutRequest, checkout: Checkout) -> tuple[dict[str, str], bytes]:
        """Complete the payment; return the notification (headers, raw body) the vendor sends."""
        ...

    def refunded(self, request: CheckoutRequest, checkout: Checkout) -> int:
        """What the vendor's own records say was refunded of this payment (minor units)."""
        ...


@dataclass
class LocalDriver:
    provider: LocalPaymentProvider

    def pay(self, request: CheckoutRequest, checkout: Checkout) -> tuple[dict[str, str], bytes]:
        ref = OrderRef(
            request.order_id,
            request.order_number,
            checkout.provider_reference,
            request.amount,
            request.currency,
        )
        note = self.provider.sandbox_notification(ref, True, SystemClock().now())
        return dict(note.headers), note.body

    def refunded(self, request: CheckoutRequest, checkout: Checkout) -> int:
        report = self.provider.query_payment(ref(request, checkout))
        return request.amount if report.state is PaymentState.REFUNDED else 0


@dataclass
class StripeDriver:
    provider: StripePaymentProvider
    server: FakeStripe

    def pay(self, request: CheckoutRequest, checkout: Checkout) -> tuple[dict[str, str], bytes]:
        event = self.server.complete_session(checkout.provider_reference)
        body = json.dumps(event).encode()
        ts = int(SystemClock().now().timestamp())
        return {"Stripe-Signature": sign(body, WEBHOOK_SECRET, ts)}, body

    def refunded(self, request: CheckoutRequest, checkout: Checkout) -> int:
        intent = self.server.sessions[checkout.provider_reference]["payment_intent"]
        return sum(
            int(r["amount"]) for r in self.server.refunds.values() if r["payment_intent"] == intent
        )


@dataclass
class WeChatPayDriver:
    provider: WeChatPayProvider
    server: WeChatPayServer

    def pay(self, request: CheckoutRequest, checkout: Checkout) -> tuple[dict[str, str], bytes]:
        note = self.server.pay(checkout.provider_reference)
        return note.headers, note.body

    def refunded(self, request: CheckoutRequest, checkout: Checkout) -> int:
        return sum(
            int(r["amount"]["refund"])
            for r in self.server.refunds.values()
            if r["out_trade_no"] == checkout.provider_reference
        )


@pytest.fixture(params=["local", "stripe", "wechatpay"])
def driver(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Driver]:
    clock = SystemClock()
    if request.param == "wechatpay":
        keys = WeChatKeys()
        with WeChatPayServer(keys) as wechat:
            yield WeChatPayDriver(
                WeChatPayProvider(
                    mchid=keys.mchid,
                    appid=keys.appid,
                    apiv3_key=keys.apiv3_key,
                    merchant_serial_no=MERCHANT_SERIAL,
                    merchant_private_key=keys.merchant_private_pem,
                    public_key_id=PUBLIC_KEY_ID,
                    public_key=keys.platform_public_pem,
                    notify_url="http://gateway.test/webhooks/wechatpay",
                    clock=clock,
                    api_base=wechat.url,
                ),
                wechat,
            )
        return
    if request.param == "local":
        yield LocalDriver(
            LocalPaymentProvider(
                secret="contract-secret",
                checkout_base_url="http://gateway.test",
                webhook_url="http://gateway.test/webhooks/local",
                records_dir=tmp_path / "records",
                clock=clock,
            )
        )
        return
    server = FakeStripe()
    try:
        yield StripeDriver(
            StripePaymentProvider(
                api_key=API_KEY,
                webhook_secret=WEBHOOK_SECRET,
                success_url="http://gateway.test/orders/{order_id}",
                cancel_url="http://gateway.test/orders/{order_id}",
                clock=clock,
                api_base=server.url,
                max_network_retries=0,
            ),
            server,
        )
    finally:
        server.close()


def checkout_request(
    order_id: str = "ord_contract_1",
    mode: CheckoutMode = CheckoutMode.ONE_TIME,
    currency: str = "USD",
) -> CheckoutRequest:
    return CheckoutRequest(
        order_id=order_id,
        order_number="AT-261121-ABCDEF",
        user_id="user_1",
        item_id="pack_100",
        item_name="100 credits",
        amount=999,
        currency=currency,
        mode=mode,
        expires_at=SystemClock().now() + timedelta(minutes=30),
        period_days=30 if mode is CheckoutMode.SUBSCRIPTION else 0,
    )


def ref(request: CheckoutRequest, checkout: Checkout) -> OrderRef:
    return OrderRef(
        request.order_id,
        request.order_number,
        checkout.provider_reference,
        request.amount,
        request.currency,
    )


@pytest.mark.parametrize("mode", list(CheckoutMode))
def test_checkout_gives_the_browser_somewhere_to_pay(driver: Driver, mode: CheckoutMode) -> None:
    checkout = driver.provider.create_checkout(
        checkout_request(mode=mode, currency=driver.provider.currency)
    )
    assert checkout.provider_reference
    assert checkout.url or checkout.code_url
    assert driver.provider.currency in ("USD", "CNY")


def test_checkout_is_idempotent_per_order(driver: Driver) -> None:
    request = checkout_request(currency=driver.provider.currency)
    first = driver.provider.create_checkout(request)
    again = driver.provider.create_checkout(request)
    assert (first.provider_reference, first.url, first.code_url) == (
        again.provider_reference,
        again.url,
        again.code_url,
    )


def test_a_paid_order_is_notified_and_queryable(driver: Driver) -> None:
    request = checkout_request(currency=driver.provider.currency)
    checkout = driver.provider.create_checkout(request)
    assert driver.provider.query_payment(ref(request, checkout)).state is PaymentState.PENDING
    headers, body = driver.pay(request, checkout)
    event = driver.provider.parse_notification(headers, body)
    assert event.kind is PaymentEventKind.PAYMENT_SUCCEEDED
    assert (event.order_id, event.amount, event.currency) == (
        request.order_id,
        999,
        request.currency,
    )
    assert event.event_id and event.transaction_id and event.provider == driver.provider.name
    report = driver.provider.query_payment(ref(request, checkout))
    assert report.state is PaymentState.PAID
    assert (report.amount, report.transaction_id) == (999, event.transaction_id)


def test_tampered_or_unsigned_notifications_are_refused(driver: Driver) -> None:
    request = checkout_request(currency=driver.provider.currency)
    checkout = driver.provider.create_checkout(request)
    headers, body = driver.pay(request, checkout)
    # the amount where it is readable; one character of the body where it is encrypted
    middle = len(body) // 2
    flipped = body[:middle] + bytes([body[middle] ^ 1]) + body[middle + 1 :]
    tampered = body.replace(b"999", b"1") if b"999" in body else flipped
    assert tampered != body
    for bad_headers, bad_body in (
        (headers, tampered),
        ({}, body),
        ({k: "t=1,v1=00" for k in headers}, body),
    ):
        with pytest.raises(InvalidNotification):
            driver.provider.parse_notification(bad_headers, bad_body)


def test_a_paid_order_is_refunded_once_per_refund_number(driver: Driver) -> None:
    request = checkout_request(currency=driver.provider.currency)
    checkout = driver.provider.create_checkout(request)
    with pytest.raises(ProviderRejected):  # nothing paid yet: nothing to refund
        driver.provider.refund(ref(request, checkout), "RF-1", 999, "test")
    headers, body = driver.pay(request, checkout)
    event = driver.provider.parse_notification(headers, body)
    paid = replace(ref(request, checkout), transaction_id=event.transaction_id)
    first = driver.provider.refund(paid, "RF-1", 999, "charged twice")
    again = driver.provider.refund(paid, "RF-1", 999, "charged twice")
    assert first.refund_id and first.refund_id == again.refund_id
    assert first.state in (RefundState.SUCCEEDED, RefundState.PENDING)
    assert driver.refunded(request, checkout) == 999


def test_closing_an_unpaid_order_leaves_it_unpayable(driver: Driver) -> None:
    request = checkout_request(currency=driver.provider.currency)
    checkout = driver.provider.create_checkout(request)
    driver.provider.close_order(ref(request, checkout))
    driver.provider.close_order(ref(request, checkout))  # closing twice is fine
    report = driver.provider.query_payment(ref(request, checkout))
    assert report.state in (PaymentState.EXPIRED, PaymentState.PENDING)  # local: never paid

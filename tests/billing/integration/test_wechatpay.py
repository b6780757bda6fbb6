"""The WeChat Pay adapter, driven through billing (gRPC) with the real ``wechatpayv3`` SDK against
a local server speaking WeChat Pay API v3; notifications come back through a real webhook
endpoint, signed and encrypted like WeChat's."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import select
from wechatpayv3 import WeChatPay, WeChatPayType

from atelier.billing.v1 import billing_pb2 as pb
from atelier.billing.v1 import billing_pb2_grpc
from atelier_billing.adapters.payments.wechatpay import (
    WECHATPAY_API_BASE,
    WeChatPayProvider,
    set_gateway,
)
from atelier_billing.adapters.persistence.tables import payment_events
from atelier_billing.application.ports.payments import OrderRef, PaymentState, RefundState
from atelier_billing.bootstrap import build_payment_provider
from atelier_ports.clock import SystemClock
from atelier_ports.errors import ProviderRejected
from tests.billing.webhook_relay import WebhookRelay
from tests.support.billing_server import RunningBilling, billing_settings, start_billing_server
from tests.support.fakes import FakeClock
from tests.support.wechatpay_server import (
    MERCHANT_SERIAL,
    PUBLIC_KEY_ID,
    Notification,
    WeChatKeys,
    WeChatPayServer,
    sign,
)


@dataclass
class Env:
    billing: RunningBilling
    stub: billing_pb2_grpc.BillingServiceStub
    wechat: WeChatPayServer
    notify_url: str
    provider: WeChatPayProvider  # the same adapter, playing the merchant's own portal
    clock: FakeClock

    def order(self, item: str = "pack_100") -> pb.Order:
        result: pb.Order = self.stub.CreateOrder(
            pb.CreateOrderRequest(item_id=item, channel="wechatpay"),
            metadata=self.billing.metadata("u1"),
        ).order
        return result

    def get(self, order_id: str) -> pb.Order:
        result: pb.Order = self.stub.GetOrder(
            pb.GetOrderRequest(order_id=order_id), metadata=self.billing.metadata("u1")
        ).order
        return result

    def available(self) -> int:
        balance = self.stub.GetBalance(
            pb.GetBalanceRequest(), metadata=self.billing.metadata("u1")
        ).balance
        return int(balance.available)

    def send(self, notification: Notification) -> int:
        return self.wechat.deliver(notification, self.notify_url)

    def ref(self, order: pb.Order) -> OrderRef:
        return OrderRef(order.id, order.number, order.number, 6800, "CNY")

    def membership(self) -> pb.Membership:
        balance = self.stub.GetBalance(
            pb.GetBalanceRequest(), metadata=self.billing.metadata("u1")
        ).balance
        result: pb.Membership = balance.membership
        return result

    def refund(self, order_id: str, role: str = "admin") -> pb.Order:
        result: pb.Order = self.stub.RefundOrder(
            pb.RefundOrderRequest(order_id=order_id, reason="charged twice"),
            metadata=self.billing.metadata("admin_1", role),
        ).order
        return result

    def refused_records(self) -> list[str]:
        """The refused events billing recorded (``refused:<event id>``)."""
        with self.billing.app.engine.connect() as conn:
            rows = conn.execute(
                select(payment_events.c.event_id).where(payment_events.c.event_id.like("refused:%"))
            )
            return sorted(str(r[0]) for r in rows)

    def consistent(self) -> bool:
        return all(c.ok for c in self.billing.app.use_cases.check_ledger())


def make_provider(keys: WeChatKeys, url: str, notify_url: str) -> WeChatPayProvider:
    return WeChatPayProvider(
        mchid=keys.mchid,
        appid=keys.appid,
        apiv3_key=keys.apiv3_key,
        merchant_serial_no=MERCHANT_SERIAL,
        merchant_private_key=keys.merchant_private_pem,
        public_key_id=PUBLIC_KEY_ID,
        public_key=keys.platform_public_pem,
        notify_url=notify_url,
        clock=SystemClock(),
        api_base=url,
    )


@pytest.fixture
def env(database_url: str, tmp_path: Path) -> Iterator[Env]:
    keys = WeChatKeys()
    relay = WebhookRelay()
    notify_url = f"{relay.url}/webhooks/wechatpay"
    clock = FakeClock.real()
    with WeChatPayServer(keys) as wechat:
        billing = start_billing_server(
            database_url,
            clock=clock,
            ATELIER_DATA_DIR=str(tmp_path),
            MARKET="cn",
            WECHATPAY_NOTIFY_URL=notify_url,
            **wechat.billing_settings(tmp_path),
        )
        relay.attach(billing)
        with billing.channel() as channel:
            stub = billing.stub(channel)
            stub.SetUpAccount(pb.SetUpAccountRequest(), metadata=billing.metadata("u1"))
            provider = make_provider(keys, wechat.url, notify_url)
            yield Env(billing, stub, wechat, notify_url, provider, clock)
        relay.close()
        billing.stop()


def test_native_checkout_pay_and_notification_grant_the_pack(env: Env) -> None:
    order = env.order()
    assert order.checkout.code_url.startswith("weixin://wxpay/bizpayurl?pr=")
    tx = env.wechat.transactions[order.number]  # out_trade_no is our order number
    assert tx["amount"] == {"total": 6800, "currency": "CNY"}  # integer fen
    assert tx["attach"] == order.id and tx["notify_url"] == env.notify_url
    expires = datetime.fromisoformat(tx["time_expire"])
    assert expires.utcoffset() == timedelta(hours=8)
    assert int(expires.timestamp()) == order.checkout.expire_time.seconds
    assert env.wechat.pay_and_notify(order.number) == 200  # to the notify_url billing gave
    assert env.get(order.id).status == pb.ORDER_STATUS_PAID
    assert env.available() == 110
    assert env.wechat.refused == []  # every request carried a valid Authorization
    assert env.consistent()


def test_ten_identical_notifications_at_once_grant_once(env: Env) -> None:
    order = env.order()
    notification = env.wechat.pay(order.number)
    with ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(lambda _: env.send(notification), range(10)))
    assert answers == [200] * 10
    assert env.available() == 110
    assert env.consistent()


def _resigned(env: Env, notification: Notification, body: dict[str, Any]) -> Notification:
    raw = json.dumps(body).encode()
    return Notification(env.wechat.signed_headers(raw), raw)


def test_refused_notifications_change_nothing(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    order = env.order()
    good = env.wechat.pay(order.number)
    now = int(time.time())
    forged = dict(good.headers)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ts, nonce = forged["Wechatpay-Timestamp"], forged["Wechatpay-Nonce"]
    forged["Wechatpay-Signature"] = sign(other, f"{ts}\n{nonce}\n{good.body.decode()}\n")
    tampered_body = json.loads(good.body)
    ct = bytearray(base64.b64decode(tampered_body["resource"]["ciphertext"]))
    ct[0] ^= 1
    tampered_body["resource"]["ciphertext"] = base64.b64encode(bytes(ct)).decode()
    wrong_type = {**good.headers, "Wechatpay-Signature-Type": "WECHATPAY2-SHA256-RSA1024"}
    env.wechat.transactions["AT-000000-NOSUCH"] = {
        **env.wechat.transactions[order.number],
        "out_trade_no": "AT-000000-NOSUCH",
        "attach": "",
        "transaction_id": "4200000000000000000000000099",
    }
    refused = {
        "forged signature": Notification(forged, good.body),
        "stale timestamp": env.wechat.pay(order.number, at=now - 360),
        "future timestamp": env.wechat.pay(order.number, at=now + 360),
        "amount mismatch": env.wechat.pay(order.number, amount={"total": 1, "currency": "CNY"}),
        "currency mismatch": env.wechat.pay(
            order.number, amount={"total": 6800, "currency": "USD"}
        ),
        "mchid mismatch": env.wechat.pay(order.number, mchid="1999999999"),
        "out_trade_no mismatch": env.wechat.pay(order.number, out_trade_no="AT-000000-OTHER1"),
        "appid mismatch": env.wechat.pay(order.number, appid="wxsomeoneelse000"),
        "tampered ciphertext": _resigned(env, good, tampered_body),
        "signature type": Notification(wrong_type, good.body),
        "unknown out_trade_no": env.wechat.pay("AT-000000-NOSUCH"),
        "not json": Notification(env.wechat.signed_headers(b"nope"), b"nope"),
    }
    answers = {case: env.send(n) for case, n in refused.items()}
    assert answers == {case: 400 for case in refused}
    assert "notification refused" in caplog.text
    assert env.wechat.keys.apiv3_key not in caplog.text  # secrets never logged
    assert env.get(order.id).status == pb.ORDER_STATUS_PENDING
    assert env.available() == 10
    # The verified events that did not match (amount, currency, out_trade_no, mchid, appid) are
    # recorded as refused — under a key of their own, so the genuine event still pays.
    txid = env.wechat.transactions[order.number]["transaction_id"]
    assert env.refused_records() == [f"refused:transaction:{txid}:SUCCESS"]
    assert env.consistent()
    assert env.send(good) == 200
    assert env.available() == 110
    assert env.consistent()


def test_refresh_pays_an_order_whose_notification_was_dropped(env: Env) -> None:
    order = env.order()
    env.wechat.pay(order.number)  # paid at WeChat; the notification never arrives
    env.stub.RefreshOrder(
        pb.RefreshOrderRequest(order_id=order.id), metadata=env.billing.metadata("u1")
    )
    assert env.get(order.id).status == pb.ORDER_STATUS_PAID
    assert env.available() == 110
    assert env.consistent()


def test_reordered_refund_and_pay_never_move_an_order_backwards(env: Env) -> None:
    order = env.order()
    paid = env.wechat.pay(order.number)
    # refunded from the merchant portal before billing heard of the payment
    receipt = env.provider.refund(env.ref(order), "RF-" + order.number, 6800, "portal")
    assert receipt.state is RefundState.PENDING and receipt.refund_id
    refund = env.wechat.refund_notification("RF-" + order.number)
    assert env.send(refund) == 400  # refund before pay: refused unrecorded, WeChat retries
    assert env.get(order.id).status == pb.ORDER_STATUS_PENDING
    assert [env.send(paid) for _ in range(2)] == [200, 200]
    assert env.available() == 110
    assert [env.send(refund) for _ in range(3)] == [200, 200, 200]  # idempotent
    assert env.get(order.id).status == pb.ORDER_STATUS_REFUNDED
    assert env.available() == 10
    assert env.send(paid) == 200  # a late duplicate of the payment: no way back to paid
    assert env.get(order.id).status == pb.ORDER_STATUS_REFUNDED
    assert env.available() == 10
    assert env.consistent()


def test_ten_identical_refund_notifications_at_once_claw_back_once(env: Env) -> None:
    order = env.order()
    assert env.wechat.pay_and_notify(order.number) == 200
    env.provider.refund(env.ref(order), "RF-" + order.number, 6800, "portal")
    refund = env.wechat.refund_notification("RF-" + order.number)
    with ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(lambda _: env.send(refund), range(10)))
    assert answers == [200] * 10
    assert env.get(order.id).status == pb.ORDER_STATUS_REFUNDED
    assert env.available() == 10
    assert env.consistent()


def test_a_refund_notification_for_another_merchant_is_refused_and_recorded(env: Env) -> None:
    order = env.order()
    assert env.wechat.pay_and_notify(order.number) == 200
    env.provider.refund(env.ref(order), "RF-" + order.number, 6800, "portal")
    refund = env.wechat.refunds["RF-" + order.number]
    env.wechat.keys.mchid, ours = "1999999999", env.wechat.keys.mchid
    try:
        foreign = env.wechat.refund_notification("RF-" + order.number)
    finally:
        env.wechat.keys.mchid = ours
    assert env.send(foreign) == 400
    assert env.get(order.id).status == pb.ORDER_STATUS_PAID and env.available() == 110
    assert env.refused_records() == [f"refused:refund:{refund['refund_id']}:SUCCESS"]
    assert env.consistent()


def test_a_refund_notification_naming_another_order_number_is_refused(env: Env) -> None:
    order = env.order()
    assert env.wechat.pay_and_notify(order.number) == 200
    env.provider.refund(env.ref(order), "RF-" + order.number, 6800, "portal")
    env.wechat.refunds["RF-" + order.number]["out_trade_no"] = "AT-000000-OTHER1"
    assert env.send(env.wechat.refund_notification("RF-" + order.number)) == 400
    assert env.get(order.id).status == pb.ORDER_STATUS_PAID
    assert env.available() == 110
    assert len(env.refused_records()) == 1
    assert env.consistent()


def test_admin_refund_goes_through_wechat_and_claws_back_once(env: Env) -> None:
    order = env.order()
    assert env.wechat.pay_and_notify(order.number) == 200
    with pytest.raises(grpc.RpcError) as denied:
        env.refund(order.id, role="user")
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    refunded = env.refund(order.id)
    assert refunded.status == pb.ORDER_STATUS_REFUNDED and refunded.refunded_time.seconds
    assert env.available() == 10  # the 100 unspent credits taken back
    wechat_refund = env.wechat.refunds["RF-" + order.number]
    assert wechat_refund["amount"]["refund"] == wechat_refund["amount"]["total"] == 6800
    assert wechat_refund["_notify_url"] == env.notify_url
    assert env.refund(order.id).status == pb.ORDER_STATUS_REFUNDED  # a repeat: refunded once
    assert len(env.wechat.refunds) == 1
    # WeChat's own REFUND.SUCCESS notification (and its duplicates) change nothing more
    assert [env.wechat.refund_and_notify("RF-" + order.number) for _ in range(2)] == [200, 200]
    assert env.available() == 10
    assert env.consistent()


def test_admin_refund_of_a_membership_ends_it(env: Env) -> None:
    order = env.order("plan_monthly")
    assert env.wechat.pay_and_notify(order.number) == 200
    assert env.membership().active and env.available() == 110
    env.refund(order.id)
    membership = env.membership()
    assert not membership.active and membership.status == pb.MEMBERSHIP_STATUS_CANCELED
    assert env.available() == 10
    assert env.consistent()


def test_only_a_paid_order_is_refunded(env: Env) -> None:
    order = env.order()
    with pytest.raises(grpc.RpcError) as refused:
        env.refund(order.id)
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(grpc.RpcError) as unknown:
        env.refund("ord_nosuch")
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
    assert env.wechat.refunds == {}


def test_an_expired_order_is_closed_at_wechat(env: Env) -> None:
    order = env.order()
    paid = env.order()
    assert env.wechat.pay_and_notify(paid.number) == 200
    env.clock.advance(minutes=31)
    report = env.stub.RunExpiry(pb.RunExpiryRequest(), metadata=env.billing.metadata(None))
    assert report.expired_orders == 1
    assert env.get(order.id).status == pb.ORDER_STATUS_EXPIRED
    assert env.wechat.transactions[order.number]["trade_state"] == "CLOSED"
    assert env.wechat.transactions[paid.number]["trade_state"] == "SUCCESS"
    assert ("POST", f"/v3/pay/transactions/out-trade-no/{paid.number}/close") not in (
        env.wechat.requests
    )


def test_close_and_query_an_expired_order(env: Env) -> None:
    order = env.order()
    assert env.provider.query_payment(env.ref(order)).state is PaymentState.PENDING
    env.provider.close_order(env.ref(order))
    assert env.wechat.transactions[order.number]["trade_state"] == "CLOSED"
    assert env.provider.query_payment(env.ref(order)).state is PaymentState.EXPIRED
    unknown = OrderRef("ord_x", "AT-000000-ZZZZZZ", None, 1, "CNY")
    assert env.provider.query_payment(unknown).state is PaymentState.PENDING
    env.provider.close_order(unknown)  # never created at WeChat: nothing to close


def test_requests_signed_with_another_merchant_key_are_refused(env: Env) -> None:
    stranger = WeChatKeys(
        mchid=env.wechat.keys.mchid, appid=env.wechat.keys.appid, platform=env.wechat.keys.platform
    )
    provider = make_provider(stranger, env.wechat.url, env.notify_url)
    with pytest.raises(ProviderRejected):
        provider.query_payment(OrderRef("ord_x", "AT-000000-ZZZZZZ", None, 1, "CNY"))
    assert env.wechat.refused


def test_a_missing_key_file_is_a_clear_error_naming_the_setting(tmp_path: Path) -> None:
    settings = billing_settings(
        "sqlite://",
        tmp_path,
        WECHATPAY_MCHID="1230000109",
        WECHATPAY_APIV3_KEY="k" * 32,
        WECHATPAY_MERCHANT_PRIVATE_KEY_FILE=str(tmp_path / "absent.pem"),
    )
    with pytest.raises(ValueError, match="WECHATPAY_MERCHANT_PRIVATE_KEY_FILE") as caught:
        build_payment_provider("wechatpay", settings, SystemClock())
    assert "k" * 32 not in str(caught.value)


def test_the_sdk_still_has_the_gateway_attribute_we_override() -> None:
    """We depend on wechatpayv3's private ``_core._gate_way`` (VENDORS.md 2.6): a new SDK
    version that renames it must fail here, not silently call WeChat's real gateway."""
    keys = WeChatKeys()
    client = WeChatPay(
        wechatpay_type=WeChatPayType.NATIVE,
        mchid=keys.mchid,
        private_key=keys.merchant_private_pem,
        cert_serial_no=MERCHANT_SERIAL,
        appid=keys.appid,
        apiv3_key=keys.apiv3_key,
        public_key=keys.platform_public_pem,
        public_key_id=PUBLIC_KEY_ID,
    )
    assert client._core._gate_way == WECHATPAY_API_BASE
    set_gateway(client, "http://127.0.0.1:9")
    assert client._core._gate_way == "http://127.0.0.1:9"
    with pytest.raises(RuntimeError, match="_gate_way"):
        set_gateway(object(), "http://127.0.0.1:9")


def test_a_membership_is_bought_per_period_and_a_second_order_extends_it(env: Env) -> None:
    first = env.order("plan_monthly")
    assert (first.amount, first.currency, first.credits) == (9900, "CNY", 100)  # ¥99
    assert env.wechat.transactions[first.number]["amount"]["total"] == 9900
    assert env.send(env.wechat.pay(first.number)) == 200
    membership = env.membership()
    assert membership.active
    assert (membership.quota_total, membership.quota_left) == (100, 100)
    first_end = membership.period_end_time.seconds
    assert first_end == int(env.clock.now().timestamp()) + 30 * 86400
    second = env.order("plan_monthly")
    assert env.send(env.wechat.pay(second.number)) == 200
    balance = env.stub.GetBalance(pb.GetBalanceRequest(), metadata=env.billing.metadata("u1"))
    assert balance.balance.membership.period_end_time.seconds >= first_end + 30 * 86400 - 5
    assert env.consistent()


def test_the_cn_catalog_sells_in_cny_only(env: Env) -> None:
    catalog = env.stub.GetCatalog(pb.GetCatalogRequest(), metadata=env.billing.metadata(None))
    assert catalog.market == "cn" and list(catalog.channels) == ["wechatpay"]
    items = {i.id: i for i in catalog.items}
    plan = items["plan_monthly"]
    assert (plan.credits, plan.period_days) == (100, 30)
    assert [(p.currency, p.amount) for p in plan.prices] == [("CNY", 9900)]
    assert all([p.currency for p in i.prices] == ["CNY"] for i in catalog.items)

"""The cn market over HTTP: the real gateway (MARKET=cn, log-in codes sent by the real Tencent Cloud
SMS SDK to a local endpoint that checks TC3 signatures), the real billing service with the WeChat
Pay adapter (the real ``wechatpayv3`` SDK) against a local WeChat Pay API v3 server whose signed,
encrypted notifications reach billing through the gateway's ``/webhooks/wechatpay`` (SQLite and
PostgreSQL)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from atelier.billing.v1 import billing_pb2 as pb
from tests.gateway.conftest import Api, User
from tests.gateway.harness import RunningGateway, gateway_settings, reserve_socket, start_gateway
from tests.support.billing_server import RunningBilling, start_billing_server
from tests.support.fakes import FakeClock
from tests.support.tencent_sms_server import FakeTencentSms
from tests.support.wechatpay_server import (
    Notification,
    WeChatPayServer,
)

DAY = 86400


@dataclass
class CnStack:
    gateway: RunningGateway
    billing: RunningBilling
    wechat: WeChatPayServer
    api: Api
    clock: FakeClock  # billing's
    sms: FakeTencentSms

    def webhook(self, notification: Notification, **headers: str) -> httpx.Response:
        return self.api.http.post(
            "/webhooks/wechatpay",
            content=notification.body,
            headers={**notification.headers, "Content-Type": "application/json", **headers},
        )

    def admin(self, email: str) -> User:
        user = self.api.user(email)
        self.gateway.container.promote_admin(email)
        body = self.api.http.post(
            "/v1/auth/login", json={"email": email, "password": "correct horse battery"}
        ).json()
        return User(self.api, user.id, body["access_token"], body["refresh_token"])

    def run_expiry(self) -> None:
        with self.billing.channel() as channel:
            self.billing.stub(channel).RunExpiry(
                pb.RunExpiryRequest(), metadata=self.billing.metadata(None)
            )


@pytest.fixture
def cn(database_url: str, billing_database_url: str, tmp_path: Path) -> Iterator[CnStack]:
    sock = reserve_socket()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    clock = FakeClock.real()
    sms = FakeTencentSms()
    with WeChatPayServer() as wechat:
        billing = start_billing_server(
            billing_database_url,
            clock=clock,
            MARKET="cn",
            PAYMENT_CHANNELS="wechatpay,local",  # local: an order of another channel
            LOCAL_PAYMENT_CURRENCY="CNY",
            GATEWAY_PUBLIC_URL=url,  # WECHATPAY_NOTIFY_URL defaults to {url}/webhooks/wechatpay
            ATELIER_DATA_DIR=str(tmp_path / "billing-data"),
            **wechat.billing_settings(tmp_path),
        )
        settings = gateway_settings(
            str(tmp_path / "data"),
            database_url,
            MARKET="cn",  # SMS_PROVIDER defaults to tencent
            GATEWAY_PUBLIC_URL=url,
            BILLING_ADDRESS=billing.address,
            ATELIER_INTERNAL_TOKEN=billing.internal_token,
            **sms.gateway_settings(),
        )
        gw = start_gateway(settings, sock=sock)
        api = Api(gw.url)
        try:
            yield CnStack(gw, billing, wechat, api, clock, sms)
        finally:
            api.close()
            gw.stop()
            billing.stop()
            sms.close()


def _order(user: User, item_id: str, channel: str = "wechatpay") -> dict[str, object]:
    r = user.post("/v1/orders", json={"item_id": item_id, "channel": channel})
    assert r.status_code == 201, r.text
    body: dict[str, object] = r.json()
    return body


def _membership(user: User) -> dict[str, object]:
    r = user.get("/v1/me/balance")
    assert r.status_code == 200, r.text
    membership: dict[str, object] = r.json()["membership"]
    return membership


def _sms_log_in(cn: CnStack, phone: str) -> User:
    sent = cn.api.http.post("/v1/auth/sms/send", json={"phone": phone})
    assert sent.status_code == 202, sent.text
    normalised = "+86" + phone.replace(" ", "")
    (code,) = cn.sms.codes_sent_to(normalised)
    r = cn.api.http.post("/v1/auth/sms/verify", json={"phone": phone, "code": code})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["user"]["phone"] == normalised and body["user"]["email"] in (None, "")
    return User(cn.api, body["user"]["id"], body["access_token"], body["refresh_token"])


def test_sms_log_in_membership_by_wechat_qr_notification_refresh_and_expiry(
    cn: CnStack,
) -> None:
    """The issue's cn journey: SMS log-in → bonus → membership by WeChat (code_url, qr.svg) →
    notification → quota → a dropped notification recovered by refresh → the period ends."""
    started = time.monotonic()
    user = _sms_log_in(cn, "138 0013 8000")
    assert user.get("/v1/me/balance").json()["available"] == 10  # the sign-up bonus
    assert user.get("/v1/me").json()["phone"] == "+8613800138000"
    catalog = cn.api.http.get("/v1/catalog").json()
    plan = next(i for i in catalog["items"] if i["id"] == "plan_monthly")
    assert catalog["market"] == "cn"
    assert (plan["credits"], plan["period_days"]) == (100, 30)
    assert plan["prices"] == [{"currency": "CNY", "amount": 9900}]

    order = _order(user, "plan_monthly")
    assert (order["amount"], order["currency"], order["channel"]) == (9900, "CNY", "wechatpay")
    checkout = order["checkout"]
    assert isinstance(checkout, dict)
    assert str(checkout["code_url"]).startswith("weixin://wxpay/bizpayurl?pr=")
    qr = user.get(f"/v1/orders/{order['id']}/qr.svg")
    assert qr.status_code == 200
    assert qr.headers["Content-Type"].startswith("image/svg+xml")
    assert qr.text.startswith("<?xml") and "<svg" in qr.text and "</svg>" in qr.text

    # the customer scans and pays; WeChat notifies the default notify_url (the gateway)
    number = str(order["number"])
    assert cn.wechat.transactions[number]["notify_url"] == f"{cn.gateway.url}/webhooks/wechatpay"
    assert cn.wechat.pay_and_notify(number) == 200
    assert user.get(f"/v1/orders/{order['id']}").json()["status"] == "paid"
    membership = _membership(user)
    assert membership["active"] is True
    assert (membership["quota_total"], membership["quota_left"]) == (100, 100)
    now = int(cn.clock.now().timestamp())
    first_end = _epoch(str(membership["period_end"]))
    assert first_end == now + 30 * DAY

    # a renewal is a new order; its notification is dropped: "I have paid" asks WeChat
    second = _order(user, "plan_monthly")
    cn.wechat.pay(str(second["number"]))
    refreshed = user.post(f"/v1/orders/{second['id']}/refresh")
    assert refreshed.status_code == 200 and refreshed.json()["status"] == "paid"
    membership = _membership(user)
    assert _epoch(str(membership["period_end"])) == first_end + 30 * DAY
    assert (membership["quota_total"], membership["quota_left"]) == (100, 200)

    # the periods end, and the membership with them
    cn.clock.advance(days=61)
    cn.run_expiry()
    membership = _membership(user)
    assert membership["active"] is False and membership["quota_left"] == 0
    assert user.get("/v1/me/balance").json()["available"] == 10
    print(f"cn journey over HTTP: {time.monotonic() - started:.2f} s")


def _epoch(rfc3339: str) -> int:
    from datetime import datetime

    return int(datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp())


def test_qr_svg_is_only_for_your_own_wechat_orders(cn: CnStack) -> None:
    owner, other = cn.api.user("a@example.com"), cn.api.user("b@example.com")
    order = _order(owner, "pack_100")
    path = f"/v1/orders/{order['id']}/qr.svg"
    assert cn.api.http.get(path).status_code == 401
    theirs = other.get(path)
    assert theirs.status_code == 404
    assert theirs.headers["Content-Type"].startswith("application/problem+json")
    local = _order(owner, "pack_100", channel="local")
    assert local["currency"] == "CNY"
    not_wechat = owner.get(f"/v1/orders/{local['id']}/qr.svg")
    assert not_wechat.status_code == 404 and not_wechat.json()["code"] == "not_found"
    assert owner.get("/v1/orders/ord_nosuch/qr.svg").status_code == 404
    assert owner.get(path).status_code == 200


def test_the_webhook_relays_raw_body_and_headers_and_answers_per_the_contract(
    cn: CnStack,
) -> None:
    user = cn.api.user("c@example.com")
    order = _order(user, "pack_100")
    number = str(order["number"])
    good = cn.wechat.pay(number)
    forged = cn.webhook(good, **{"Wechatpay-Signature": good.headers["Wechatpay-Signature"][::-1]})
    assert forged.status_code == 400
    assert forged.json()["code"] == "invalid_signature"
    # one byte of the body changed (JSON whitespace): the signature no longer holds
    respaced = Notification(good.headers, good.body.replace(b", ", b",", 1))
    assert cn.webhook(respaced).status_code == 400
    stale = cn.webhook(cn.wechat.pay(number, at=int(time.time()) - 360))
    assert stale.status_code == 400 and stale.json()["code"] == "invalid_signature"
    cheap = cn.webhook(cn.wechat.pay(number, amount={"total": 1, "currency": "CNY"}))
    assert 400 <= cheap.status_code < 500  # verified, but not what the order costs
    foreign = cn.webhook(cn.wechat.pay(number, mchid="1999999999"))
    assert 400 <= foreign.status_code < 500  # verified, but for another merchant
    assert user.get(f"/v1/orders/{order['id']}").json()["status"] == "pending"

    ok = cn.webhook(good)  # the genuine bytes and headers, relayed untouched
    assert ok.status_code == 200, ok.text
    txid = cn.wechat.transactions[number]["transaction_id"]
    assert ok.json() == {
        "received": True,
        "applied": True,
        "event_id": f"transaction:{txid}:SUCCESS",
    }
    again = cn.webhook(good)
    assert again.status_code == 200 and again.json()["applied"] is False
    assert user.get("/v1/me/balance").json()["available"] == 110


def test_admin_refund_over_http(cn: CnStack) -> None:
    user = cn.api.user("d@example.com")
    order = _order(user, "pack_100")
    assert cn.wechat.pay_and_notify(str(order["number"])) == 200
    path = f"/v1/admin/orders/{order['id']}/refund"
    assert cn.api.http.post(path, json={"reason": "x"}).status_code == 401
    forbidden = user.post(path, json={"reason": "x"})
    assert forbidden.status_code == 403 and forbidden.json()["code"] == "forbidden"
    admin = cn.admin("ops@example.com")
    done = admin.post(path, json={"reason": "charged twice"})
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "refunded" and done.json()["refunded_at"]
    assert admin.post(path).status_code == 200  # no body; a repeat refunds once
    assert len(cn.wechat.refunds) == 1
    assert user.get("/v1/me/balance").json()["available"] == 10
    pending = _order(user, "pack_100")
    refused = admin.post(f"/v1/admin/orders/{pending['id']}/refund", json={})
    assert refused.status_code == 409
    assert admin.post("/v1/admin/orders/ord_nosuch/refund", json={}).status_code == 404
    bad = admin.post(
        path, content=json.dumps({"reason": 5}), headers={"Content-Type": "application/json"}
    )
    assert bad.status_code == 422

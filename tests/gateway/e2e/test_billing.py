"""Credits, catalog, orders, sandbox checkout and payment webhooks through the gateway, with the
real billing service behind it (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import logging
import re

import httpx
from atelier_common.logs import JsonFormatter

from tests.gateway.conftest import Stack, User


def _order(user: User, item_id: str, key: str | None = None) -> httpx.Response:
    headers = {"Idempotency-Key": key} if key else {}
    return user.post("/v1/orders", json={"item_id": item_id, "channel": "local"}, headers=headers)


def test_signup_bonus_catalog_and_ledger(stack: Stack) -> None:
    user = stack.api.user("ann@example.com")
    balance = user.get("/v1/me/balance")
    assert balance.status_code == 200, balance.text
    body = balance.json()
    assert body["available"] == 10 and body["held"] == 0
    assert body["membership"] is None
    assert [g["source"] for g in body["grants"]] == ["signup_bonus"]

    catalog = stack.api.http.get("/v1/catalog").json()  # public: no token needed
    assert catalog["market"] == "local"
    assert "local" in catalog["channels"]
    kinds = {i["id"]: i["kind"] for i in catalog["items"]}
    assert kinds["plan_monthly"] == "membership"
    plan = next(i for i in catalog["items"] if i["id"] == "plan_monthly")
    assert plan["period_days"] == 30 and plan["prices"]

    ledger = user.get("/v1/me/ledger").json()
    assert [(e["kind"], e["amount"], e["balance_after"]) for e in ledger["items"]] == [
        ("grant", 10, 10)
    ]
    assert ledger["next_page_token"] == ""
    r = user.get("/v1/me/ledger", params={"page_size": 0})
    assert r.status_code == 400 and r.json()["field"] == "page_size"


def test_membership_bought_through_the_sandbox_checkout(stack: Stack) -> None:
    user = stack.api.user("bea@example.com")
    r = _order(user, "plan_monthly")
    assert r.status_code == 201, r.text
    order = r.json()
    assert order["status"] == "pending"
    assert order["item_id"] == "plan_monthly" and order["channel"] == "local"
    assert order["amount"] > 0 and order["currency"] and order["number"]
    url = order["checkout"]["url"]
    assert url.startswith(f"{stack.gateway.url}/sandbox/checkout/{order['id']}?token=")

    page = stack.api.http.get(url)
    assert page.status_code == 200
    assert 'value="paid"' in page.text and 'value="failed"' in page.text

    paid = stack.api.http.post(url, data={"outcome": "paid"})
    assert paid.status_code == 303
    assert paid.headers["location"].startswith(f"/orders/{order['id']}")
    assert stack.api.http.get(paid.headers["location"]).status_code == 200

    after = user.get(f"/v1/orders/{order['id']}").json()
    assert after["status"] == "paid" and after["paid_at"]
    balance = user.get("/v1/me/balance").json()
    assert balance["available"] == 10 + 300
    assert balance["membership"]["active"] is True
    assert balance["membership"]["plan_id"] == "plan_monthly"
    assert balance["membership"]["quota_total"] == 300

    # The repeated button changes nothing twice.
    again = stack.api.http.post(url, data={"outcome": "paid"})
    assert again.status_code in (303, 409)
    assert user.get("/v1/me/balance").json()["available"] == 310
    listed = user.get("/v1/orders").json()
    assert [o["id"] for o in listed["items"]] == [order["id"]]


def test_failed_sandbox_payment_grants_nothing(stack: Stack) -> None:
    user = stack.api.user("cat@example.com")
    order = _order(user, "pack_100").json()
    r = stack.api.http.post(order["checkout"]["url"], data={"outcome": "failed"})
    assert r.status_code == 303
    assert user.get(f"/v1/orders/{order['id']}").json()["status"] == "failed"
    assert user.get("/v1/me/balance").json()["available"] == 10
    bad = stack.api.http.post(order["checkout"]["url"], data={"outcome": "maybe"})
    assert bad.status_code == 422 and bad.json()["field"] == "outcome"


def test_refresh_order_asks_the_provider(stack: Stack) -> None:
    user = stack.api.user("dan@example.com")
    order = _order(user, "pack_100").json()
    r = user.post(f"/v1/orders/{order['id']}/refresh")
    assert r.status_code == 200, r.text
    assert r.json()["id"] == order["id"]
    assert r.json()["status"] == "pending"


def test_idempotency_key_on_orders(stack: Stack) -> None:
    user = stack.api.user("eli@example.com")
    first = _order(user, "pack_100", key="k-1")
    second = _order(user, "pack_100", key="k-1")
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    assert second.headers.get("Idempotent-Replayed") == "true"
    conflict = _order(user, "pack_500", key="k-1")
    assert conflict.status_code == 409
    assert conflict.json()["code"] == "idempotency_key_reused"
    assert len(user.get("/v1/orders").json()["items"]) == 1
    # Keys are per user: another user's identical key is a different request.
    other = stack.api.user("fox@example.com")
    assert _order(other, "pack_100", key="k-1").json()["id"] != first.json()["id"]


def test_another_users_order_is_404(stack: Stack) -> None:
    alice = stack.api.user("alice@example.com")
    bob = stack.api.user("bob@example.com")
    order = _order(alice, "pack_100").json()
    for response in (
        bob.get(f"/v1/orders/{order['id']}"),
        bob.post(f"/v1/orders/{order['id']}/refresh"),
        bob.get("/v1/orders/not-an-id!"),
    ):
        assert response.status_code == 404, response.text
        assert response.json()["code"] == "not_found"
    assert bob.get("/v1/orders").json()["items"] == []


def test_bad_order_input(stack: Stack) -> None:
    user = stack.api.user("gil@example.com")
    r = user.post("/v1/orders", json={"item_id": 7, "channel": "local"})
    assert r.status_code == 422 and r.json()["field"] == "item_id"
    r = user.post("/v1/orders", json={"item_id": "pack_100"})
    assert r.status_code == 422 and r.json()["field"] == "channel"
    r = user.post("/v1/orders", json={"item_id": "no_such_item", "channel": "local"})
    assert r.status_code in (404, 422), r.text
    r = user.post("/v1/orders", json={"item_id": "pack_100", "channel": "bitcoin"})
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "validation_error"
    assert user.get("/v1/orders").json()["items"] == []
    assert stack.api.http.post("/v1/orders", json={}).status_code == 401


def test_forged_webhooks_are_400_and_change_nothing(stack: Stack) -> None:
    user = stack.api.user("hana@example.com")
    order = _order(user, "pack_100").json()
    forged = json.dumps({"type": "payment_succeeded", "order_id": order["id"]}).encode()
    for headers in (
        {"content-type": "application/json"},
        {"content-type": "application/json", "X-Atelier-Signature": "t=1,v1=deadbeef"},
    ):
        r = stack.api.http.post("/webhooks/local", content=forged, headers=headers)
        assert r.status_code == 400, r.text
        assert r.json()["code"] == "invalid_signature"
    assert user.get(f"/v1/orders/{order['id']}").json()["status"] == "pending"
    assert user.get("/v1/me/balance").json()["available"] == 10
    assert stack.api.http.post("/webhooks/paypal", content=b"{}").status_code == 404


def test_readiness_and_request_id_with_billing(stack: Stack) -> None:
    ready = stack.api.http.get("/readyz").json()
    assert ready["checks"]["billing"] is True
    user = stack.api.user("ivy@example.com")
    r = user.get("/v1/me/balance", headers={"X-Request-ID": "trace-me-1"})
    assert r.headers["X-Request-ID"] == "trace-me-1"
    metrics = stack.api.http.get("/metrics").text
    assert re.search(r'route="/v1/me/balance",status="200"', metrics)


class _Capture(logging.Handler):
    """Formats at emit time, in the thread that handles the call (its context is set there)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[dict[str, object]] = []
        self.formatter_ = JsonFormatter()

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.formatter_.format(record)))


def test_request_id_reaches_billing_in_grpc_metadata(stack: Stack) -> None:
    user = stack.api.user("jay@example.com")
    capture = _Capture()
    grpc_log = logging.getLogger("atelier.grpc")
    old_level = grpc_log.level
    grpc_log.addHandler(capture)
    grpc_log.setLevel(logging.DEBUG)
    try:
        r = user.get("/v1/me/balance", headers={"X-Request-ID": "follow-me-42"})
        assert r.status_code == 200
    finally:
        grpc_log.removeHandler(capture)
        grpc_log.setLevel(old_level)
    seen = [line for line in capture.lines if line.get("request_id") == "follow-me-42"]
    assert seen, capture.lines
    assert seen[0]["user_id"] == user.id


def test_profile_name_reaches_billing(stack: Stack) -> None:
    from sqlalchemy import select

    from atelier_billing.adapters.persistence.tables import accounts

    user = stack.api.user("eve@example.com")
    user_id = user.get("/v1/me").json()["id"]
    assert user.patch("/v1/me", json={"name": "Eve Q."}).status_code == 200
    with stack.billing.app.engine.connect() as conn:
        row = conn.execute(
            select(accounts.c.email, accounts.c.name).where(accounts.c.user_id == user_id)
        ).one()
    assert (row.email, row.name) == ("eve@example.com", "Eve Q.")

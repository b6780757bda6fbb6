"""Phone + SMS log-in through the whole stack (the real billing service behind the gateway, the
default wiring: the console SMS adapter, whose log line is where a person reads the code), on
SQLite and PostgreSQL: ten concurrent first log-ins with one phone make one user and one sign-up
bonus, and a phone-only account buys and spends like any other."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from atelier_gateway.application.profiles import UserSearch
from tests.gateway.conftest import Stack, User

PHONE = "+8613800138000"


def console_code(caplog: pytest.LogCaptureFixture, phone: str) -> str:
    """The last code the console SMS adapter wrote to the log for ``phone``."""
    codes = [
        str(r.fields["code"])  # type: ignore[attr-defined]
        for r in caplog.records
        if r.name == "atelier.gateway.sms" and getattr(r, "fields", {}).get("phone") == phone
    ]
    assert codes, "no SMS code was logged"
    return codes[-1]


def test_ten_concurrent_first_log_ins_make_one_user_with_one_bonus(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    http = stack.api.http
    caplog.set_level("INFO", logger="atelier.gateway.sms")
    r = http.post("/v1/auth/sms/send", json={"phone": "13800138000"})
    assert r.status_code == 202, r.text
    code = console_code(caplog, PHONE)
    barrier = threading.Barrier(10)

    def one(_: int) -> httpx.Response:
        with httpx.Client(base_url=stack.gateway.url, timeout=60) as client:
            barrier.wait()
            return client.post("/v1/auth/sms/verify", json={"phone": PHONE, "code": code})

    with ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(one, range(10)))
    ok = [a.json() for a in answers if a.status_code == 200]
    assert len(ok) == 1, [a.text for a in answers]
    assert {a.json()["code"] for a in answers if a.status_code != 200} == {"invalid_code"}
    session = ok[0]
    user = User(stack.api, session["user"]["id"], session["access_token"], session["refresh_token"])

    balance = user.get("/v1/me/balance").json()
    assert balance["available"] == 10
    assert [g["source"] for g in balance["grants"]] == ["signup_bonus"]
    ledger = user.get("/v1/me/ledger").json()["items"]
    assert [(e["kind"], e["amount"]) for e in ledger] == [("grant", 10)]
    me = user.get("/v1/me").json()
    assert me["phone"] == PHONE and me["email"] is None
    users = stack.gateway.container.search_users
    assert [u.id for u in users(UserSearch(query="13800138000", limit=10, offset=0))] == [user.id]


def test_a_phone_only_account_buys_credits(stack: Stack, caplog: pytest.LogCaptureFixture) -> None:
    http = stack.api.http
    caplog.set_level("INFO", logger="atelier.gateway.sms")
    assert http.post("/v1/auth/sms/send", json={"phone": PHONE}).status_code == 202
    session = http.post(
        "/v1/auth/sms/verify", json={"phone": PHONE, "code": console_code(caplog, PHONE)}
    ).json()
    user = User(stack.api, session["user"]["id"], session["access_token"], session["refresh_token"])
    order = user.post("/v1/orders", json={"item_id": "pack_100", "channel": "local"})
    assert order.status_code == 201, order.text
    paid = http.post(order.json()["checkout"]["url"], data={"outcome": "paid"})
    assert paid.status_code == 303
    assert user.get(f"/v1/orders/{order.json()['id']}").json()["status"] == "paid"
    assert user.get("/v1/me/balance").json()["available"] == 10 + 100
    # The profile edit reaches billing without an email.
    r = user.patch("/v1/me", json={"name": "Mei"})
    assert r.status_code == 200 and r.json()["phone"] == PHONE and r.json()["name"] == "Mei"

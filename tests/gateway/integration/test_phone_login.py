"""Phone + SMS log-in over HTTP on SQLite and PostgreSQL, with the Tencent Cloud SMS adapter (the
real SDK) talking to the local signature-checking endpoint, and billing's account port faked.

Concurrency is real: threads send requests at once to the gateway, whose use cases run in worker
threads on pooled connections, so the row locks of the SMS challenge are what keeps the limits.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from atelier_gateway.adapters import orm
from atelier_gateway.domain.sms import SmsChallenge
from tests.gateway.fakes import FakeBillingAccounts
from tests.gateway.harness import RunningGateway, gateway_settings, start_gateway
from tests.support.fakes import FakeClock
from tests.support.tencent_sms_server import FakeTencentSms

PHONE = "+8613800138000"


@pytest.fixture
def sms_server() -> Iterator[FakeTencentSms]:
    server = FakeTencentSms()
    yield server
    server.close()


Start = Callable[..., RunningGateway]


@pytest.fixture
def start(tmp_path: Path, database_url: str, sms_server: FakeTencentSms) -> Iterator[Start]:
    """Start gateways on one database, SMS by Tencent Cloud (the local endpoint)."""
    running: list[RunningGateway] = []

    def _start(clock: FakeClock | None = None, **env: Any) -> RunningGateway:
        values: dict[str, Any] = {
            "SMS_PROVIDER": "tencent",
            **sms_server.gateway_settings(),
            "GATEWAY_AUTH_RATE_LIMIT_PER_MINUTE": "0",
        }
        values.update(env)
        settings = gateway_settings(str(tmp_path / "data"), database_url, **values)
        gw = start_gateway(settings, clock=clock, billing_accounts=billing)
        running.append(gw)
        return gw

    billing = FakeBillingAccounts()
    _start.billing = billing  # type: ignore[attr-defined]
    yield _start
    for gw in running:
        gw.stop()


def challenge(gw: RunningGateway, phone: str = PHONE) -> SmsChallenge | None:
    with gw.container.engine.connect() as conn:
        row = conn.execute(
            select(orm.sms_challenges).where(orm.sms_challenges.c.phone == phone)
        ).first()
    if row is None:
        return None
    m = row._mapping
    return SmsChallenge(
        phone=m["phone"],
        code_hash=m["code_hash"],
        wrong_attempts=m["wrong_attempts"],
        window_sends=m["window_sends"],
    )


def users_with_phone(gw: RunningGateway, phone: str = PHONE) -> int:
    with gw.container.engine.connect() as conn:
        return int(
            conn.execute(
                select(func.count()).select_from(orm.users).where(orm.users.c.phone == phone)
            ).scalar_one()
        )


def send(http: httpx.Client, phone: str = PHONE, **kw: Any) -> httpx.Response:
    return http.post("/v1/auth/sms/send", json={"phone": phone}, **kw)


def verify(http: httpx.Client, code: str, phone: str = PHONE, **kw: Any) -> httpx.Response:
    return http.post("/v1/auth/sms/verify", json={"phone": phone, "code": code}, **kw)


def test_sms_log_in_creates_the_account_and_me_shows_the_phone(
    start: Start, sms_server: FakeTencentSms
) -> None:
    gw = start()
    with httpx.Client(base_url=gw.url) as http:
        r = send(http, "138 0013 8000")
        assert r.status_code == 202, r.text
        assert r.json() == {"phone": PHONE, "expires_in": 300, "resend_after": 60}
        (sms,) = sms_server.messages
        code = sms.params[0]
        assert sms.phone == PHONE and len(code) == 6 and code.isdigit()
        assert code in sms.text and sms.params[1] == "5" and "5 minutes" in sms.text
        assert challenge(gw) is not None and code not in str(challenge(gw))

        r = verify(http, code, "13800138000")
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["user"]["phone"] == PHONE and body["user"]["email"] is None
        assert set(body) >= {"access_token", "refresh_token", "expires_in", "user"}
        auth = {"Authorization": f"Bearer {body['access_token']}"}
        me = http.get("/v1/me", headers=auth).json()
        assert me["phone"] == PHONE and me["email"] is None and me["id"] == body["user"]["id"]
        # Refresh works for phone sessions too.
        r = http.post("/v1/auth/refresh", json={"refresh_token": body["refresh_token"]})
        assert r.status_code == 200 and r.json()["user"]["phone"] == PHONE
        # The code was used up.
        again = verify(http, code)
        assert again.status_code == 400 and again.json()["code"] == "invalid_code"
    billing = start.billing  # type: ignore[attr-defined]
    assert billing.calls == [(body["user"]["id"], None, None)]


def test_five_wrong_codes_lock_the_code(start: Start, sms_server: FakeTencentSms) -> None:
    gw = start()
    with httpx.Client(base_url=gw.url) as http:
        assert send(http).status_code == 202
        code = sms_server.codes_sent_to(PHONE)[-1]
        wrong = "000000" if code != "000000" else "111111"
        for _ in range(5):
            r = verify(http, wrong)
            assert r.status_code == 400 and r.json()["code"] == "invalid_code", r.text
            assert r.headers["content-type"].startswith("application/problem+json")
        r = verify(http, code)
        assert r.status_code == 429 and r.json()["code"] == "code_locked", r.text
    assert users_with_phone(gw) == 0


def test_expired_and_reused_codes_are_refused(start: Start, sms_server: FakeTencentSms) -> None:
    clock = FakeClock.real()
    gw = start(clock)
    with httpx.Client(base_url=gw.url) as http:
        assert send(http).status_code == 202
        code = sms_server.codes_sent_to(PHONE)[-1]
        clock.advance(minutes=5)
        r = verify(http, code)
        assert r.status_code == 400 and r.json()["code"] == "invalid_code"
        assert "expired" in r.json()["detail"]
        assert send(http).status_code == 202
        code = sms_server.codes_sent_to(PHONE)[-1]
        clock.advance(minutes=4, seconds=59)
        assert verify(http, code).status_code == 200
        r = verify(http, code)
        assert r.status_code == 400 and r.json()["code"] == "invalid_code"
    assert users_with_phone(gw) == 1


def test_send_limits_per_phone_and_per_address(start: Start, sms_server: FakeTencentSms) -> None:
    clock = FakeClock.real()
    gw = start(clock, SMS_ADDRESS_LIMIT_PER_HOUR="12")
    with httpx.Client(base_url=gw.url) as http:
        assert send(http).status_code == 202
        r = send(http)
        assert r.status_code == 429 and r.json()["code"] == "rate_limited"
        assert r.headers["Retry-After"] == "60"
        for _ in range(9):
            clock.advance(minutes=1)
            assert send(http).status_code == 202
        clock.advance(minutes=1)
        r = send(http)
        assert r.status_code == 429 and "a day" in r.json()["detail"]
        assert len(sms_server.codes_sent_to(PHONE)) == 10
        # The address has asked for 10 codes this hour (each minute one); two more phones reach
        # its limit of 12, the third is refused whatever the phone.
        assert send(http, "+8613800138001").status_code == 202
        assert send(http, "+8613800138002").status_code == 202
        r = send(http, "+8613800138003")
        assert r.status_code == 429 and "address" in r.json()["detail"]
        assert int(r.headers["Retry-After"]) > 0
    assert len(sms_server.messages) == 12


def test_concurrent_sends_for_one_phone_send_one_code(
    start: Start, sms_server: FakeTencentSms
) -> None:
    gw = start(FakeClock.real())
    barrier = threading.Barrier(10)

    def one(_: int) -> int:
        with httpx.Client(base_url=gw.url, timeout=60) as http:
            barrier.wait()
            return send(http).status_code

    with ThreadPoolExecutor(10) as pool:
        statuses = sorted(pool.map(one, range(10)))
    assert statuses == [202] + [429] * 9
    assert len(sms_server.messages) == 1


def test_ten_concurrent_first_log_ins_create_one_user_and_one_bonus(
    start: Start, sms_server: FakeTencentSms
) -> None:
    gw = start()
    with httpx.Client(base_url=gw.url) as http:
        assert send(http).status_code == 202
    code = sms_server.codes_sent_to(PHONE)[-1]
    barrier = threading.Barrier(10)

    def one(_: int) -> httpx.Response:
        with httpx.Client(base_url=gw.url, timeout=60) as http:
            barrier.wait()
            return verify(http, code)

    with ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(one, range(10)))
    ok = [a for a in answers if a.status_code == 200]
    assert len(ok) == 1, [a.text for a in answers]
    assert sorted(a.json()["code"] for a in answers if a.status_code != 200) == ["invalid_code"] * 9
    assert users_with_phone(gw) == 1
    billing = start.billing  # type: ignore[attr-defined]
    assert billing.created == {ok[0].json()["user"]["id"]} and len(billing.calls) == 1


@pytest.mark.parametrize(
    ("secret", "answer"),
    [("not-the-secret-key", "AuthFailure.SignatureFailure")],
)
def test_a_wrong_secret_is_a_clean_503_and_changes_nothing(
    start: Start, sms_server: FakeTencentSms, secret: str, answer: str
) -> None:
    gw = start(TENCENT_SMS_SECRET_KEY=secret)
    with httpx.Client(base_url=gw.url) as http:
        r = send(http)
    assert r.status_code == 503, r.text
    problem = r.json()
    assert problem["code"] == "sms_unavailable" and problem["status"] == 503
    assert secret not in r.text and "AuthFailure" not in r.text
    assert sms_server.refusals == [answer] and sms_server.messages == []
    assert challenge(gw) in (None, SmsChallenge(phone=PHONE))  # no code, no send counted
    # The same database with the right secret: not rate-limited by the failed attempt.
    good = start()
    with httpx.Client(base_url=good.url) as http:
        assert send(http).status_code == 202
    assert len(sms_server.messages) == 1


def test_an_email_account_adds_a_verified_phone(start: Start, sms_server: FakeTencentSms) -> None:
    clock = FakeClock.real()
    gw = start(clock)
    with httpx.Client(base_url=gw.url) as http:
        ada = http.post(
            "/v1/auth/signup", json={"email": "ada@example.com", "password": "long enough"}
        ).json()
        bo = http.post(
            "/v1/auth/signup", json={"email": "bo@example.com", "password": "long enough"}
        ).json()
        ada_auth = {"Authorization": f"Bearer {ada['access_token']}"}
        bo_auth = {"Authorization": f"Bearer {bo['access_token']}"}
        assert send(http).status_code == 202
        r = verify(http, sms_server.codes_sent_to(PHONE)[-1], headers=ada_auth)
        assert r.status_code == 200, r.text
        assert r.json()["user"]["id"] == ada["user"]["id"]
        assert r.json()["user"]["email"] == "ada@example.com"
        assert http.get("/v1/me", headers=ada_auth).json()["phone"] == PHONE
        # Ada now logs in with the phone alone.
        clock.advance(minutes=1)
        assert send(http).status_code == 202
        r = verify(http, sms_server.codes_sent_to(PHONE)[-1])
        assert r.json()["user"]["id"] == ada["user"]["id"]
        # Bo cannot take Ada's phone, and the code he got stays valid (nothing was used up).
        clock.advance(minutes=1)
        assert send(http).status_code == 202
        code = sms_server.codes_sent_to(PHONE)[-1]
        r = verify(http, code, headers=bo_auth)
        assert r.status_code == 409 and r.json()["code"] == "phone_taken"
        assert http.get("/v1/me", headers=bo_auth).json()["phone"] is None
        assert verify(http, code).json()["user"]["id"] == ada["user"]["id"]
        # A bad token is refused, never treated as "not signed in".
        r = verify(http, "123456", headers={"Authorization": "Bearer nope"})
        assert r.status_code == 401
    assert users_with_phone(gw) == 1


def test_bad_input_is_a_4xx_naming_the_field(start: Start, sms_server: FakeTencentSms) -> None:
    gw = start()
    with httpx.Client(base_url=gw.url) as http:
        for body, field in (
            ({"phone": "not a phone"}, "phone"),
            ({"phone": "+86 123"}, "phone"),
            ({"phone": 13800138000}, "phone"),
            ({}, "phone"),
            ({"phone": PHONE, "extra": 1}, "extra"),
        ):
            r = http.post("/v1/auth/sms/send", json=body)
            assert r.status_code == 422 and r.json()["field"] == field, (body, r.text)
        for body, field in (
            ({"phone": PHONE, "code": "12345"}, "code"),
            ({"phone": PHONE, "code": 123456}, "code"),
            ({"phone": "x", "code": "123456"}, "phone"),
        ):
            r = http.post("/v1/auth/sms/verify", json=body)
            assert r.status_code == 422 and r.json()["field"] == field, (body, r.text)
        r = http.post(
            "/v1/auth/sms/send", content=b"{", headers={"content-type": "application/json"}
        )
        assert r.status_code == 400
    assert sms_server.requests == 0 and challenge(gw) is None


def test_admin_search_and_promotion_find_phone_only_users(
    start: Start, sms_server: FakeTencentSms
) -> None:
    gw = start()
    with httpx.Client(base_url=gw.url) as http:
        send(http)
        user = verify(http, sms_server.codes_sent_to(PHONE)[-1]).json()
        admin = http.post(
            "/v1/auth/signup", json={"email": "root@example.com", "password": "long enough"}
        ).json()
        gw.container.promote_admin("root@example.com")
        token = http.post(
            "/v1/auth/refresh", json={"refresh_token": admin["refresh_token"]}
        ).json()["access_token"]
        found = http.get(
            "/v1/admin/users",
            params={"query": "13800138000"},
            headers={"Authorization": f"Bearer {token}"},
        ).json()["items"]
        assert [u["id"] for u in found] == [user["user"]["id"]]
        assert found[0]["email"] is None and found[0]["phone"] == PHONE
    promoted = gw.container.promote_admin("+86 138 0013 8000")
    assert promoted.id == user["user"]["id"] and promoted.role.value == "admin"

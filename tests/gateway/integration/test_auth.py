"""Sign-up, log-in, token rotation, log-out, profile and roles over real HTTP."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from atelier_gateway.adapters import orm
from tests.gateway.conftest import PASSWORD, Api, User
from tests.gateway.fakes import FakeBillingAccounts
from tests.gateway.harness import (
    RunningGateway,
    gateway_settings,
    start_gateway,
)
from tests.support.fakes import FakeClock


def _count(gw: RunningGateway, table: object) -> int:
    with gw.container.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())  # type: ignore[arg-type]


def test_signup_returns_tokens_and_sets_up_billing_once(
    api: Api, fake_billing: FakeBillingAccounts
) -> None:
    body = api.signup("Ann@Example.com", name="Ann")
    assert body["user"]["email"] == "ann@example.com"
    assert body["user"]["role"] == "user"
    assert body["user"]["name"] == "Ann"
    assert body["expires_in"] > 0 and body["access_token"] and body["refresh_token"]
    assert fake_billing.calls == [(body["user"]["id"], "ann@example.com", "Ann")]

    login = api.http.post("/v1/auth/login", json={"email": "ann@example.com", "password": PASSWORD})
    assert login.status_code == 200
    assert login.json()["user"]["id"] == body["user"]["id"]
    assert len(fake_billing.calls) == 1  # log-in does not set the account up again


def test_duplicate_email_is_409_and_changes_nothing(api: Api, gateway: RunningGateway) -> None:
    api.signup("bob@example.com")
    r = api.http.post("/v1/auth/signup", json={"email": "BOB@example.com", "password": PASSWORD})
    assert r.status_code == 409
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == "email_taken"
    assert _count(gateway, orm.users) == 1


def test_billing_down_at_signup_is_retried_at_login(
    api: Api, fake_billing: FakeBillingAccounts
) -> None:
    fake_billing.fail = True
    r = api.http.post("/v1/auth/signup", json={"email": "c@example.com", "password": PASSWORD})
    assert r.status_code == 503
    assert r.json()["code"] == "unavailable"
    fake_billing.fail = False
    r = api.http.post("/v1/auth/login", json={"email": "c@example.com", "password": PASSWORD})
    assert r.status_code == 200
    assert [c[1] for c in fake_billing.calls] == ["c@example.com"]


@pytest.mark.parametrize(
    ("email", "password"),
    [("dora@example.com", "wrong password!"), ("nobody@example.com", PASSWORD)],
)
def test_bad_credentials_get_the_same_401(api: Api, email: str, password: str) -> None:
    api.signup("dora@example.com")
    r = api.http.post("/v1/auth/login", json={"email": email, "password": password})
    assert r.status_code == 401
    assert r.json()["code"] == "invalid_credentials"
    assert "access_token" not in r.text


def test_refresh_rotates_and_reuse_revokes_the_family(api: Api) -> None:
    first = api.signup("eve@example.com")
    r1 = api.http.post("/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert r1.status_code == 200
    second = r1.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert (
        api.http.get(
            "/v1/me", headers={"Authorization": f"Bearer {second['access_token']}"}
        ).status_code
        == 200
    )

    reuse = api.http.post("/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert reuse.status_code == 401
    assert reuse.json()["code"] == "unauthenticated"
    # The thief's copy is spent and so is the legitimate newer token: the family is revoked.
    after = api.http.post("/v1/auth/refresh", json={"refresh_token": second["refresh_token"]})
    assert after.status_code == 401


def test_refresh_families_are_independent(api: Api) -> None:
    a = api.signup("fay@example.com")
    b = api.http.post("/v1/auth/login", json={"email": "fay@example.com", "password": PASSWORD})
    api.http.post("/v1/auth/refresh", json={"refresh_token": a["refresh_token"]})
    api.http.post("/v1/auth/refresh", json={"refresh_token": a["refresh_token"]})  # reuse
    r = api.http.post("/v1/auth/refresh", json={"refresh_token": b.json()["refresh_token"]})
    assert r.status_code == 200


def test_logout_revokes_the_refresh_token(api: Api) -> None:
    body = api.signup("gus@example.com")
    r = api.http.post("/v1/auth/logout", json={"refresh_token": body["refresh_token"]})
    assert r.status_code == 204
    r = api.http.post("/v1/auth/refresh", json={"refresh_token": body["refresh_token"]})
    assert r.status_code == 401
    r = api.http.post("/v1/auth/refresh", json={"refresh_token": "not-a-token"})
    assert r.status_code == 401


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_tampered_unsigned_and_missing_tokens_are_401(api: Api) -> None:
    user = api.user("hal@example.com")
    header, payload, signature = user.access_token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["role"] = "admin"
    forged = f"{header}.{_b64(claims)}.{signature}"
    unsigned = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}."
    bad_sig = f"{header}.{payload}.{signature[:-4]}AAAA"
    for token in (forged, unsigned, bad_sig, "garbage"):
        r = api.http.get("/v1/admin/users", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401, token
        assert r.json()["code"] == "unauthenticated"
    assert api.http.get("/v1/me").status_code == 401
    r = api.http.get("/v1/me", headers={"Authorization": "Basic abc"})
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"].startswith("Bearer")


def test_expired_access_and_refresh_tokens_are_refused(tmp_path: Path) -> None:
    clock = FakeClock()
    settings = gateway_settings(
        str(tmp_path / "d"), f"sqlite:///{tmp_path / 'g.db'}", GATEWAY_REFRESH_TOKEN_DAYS=1
    )
    gw = start_gateway(settings, billing_accounts=FakeBillingAccounts(), clock=clock)
    api = Api(gw.url)
    try:
        user = api.user("ida@example.com")
        assert user.get("/v1/me").status_code == 200
        clock.advance(seconds=settings.gateway_access_token_seconds + 1)
        r = user.get("/v1/me")
        assert r.status_code == 401
        assert "expired" in r.json()["detail"]
        clock.advance(days=1)
        r = api.http.post("/v1/auth/refresh", json={"refresh_token": user.refresh_token})
        assert r.status_code == 401
    finally:
        api.close()
        gw.stop()


def test_profile_read_and_update(api: Api) -> None:
    user = api.user("jo@example.com")
    me = user.get("/v1/me").json()
    assert set(me) >= {
        "id",
        "email",
        "phone",
        "name",
        "avatar_url",
        "preferences",
        "role",
        "created_at",
    }
    assert me["created_at"].endswith("Z")
    r = user.patch(
        "/v1/me",
        json={
            "name": "Jo",
            "avatar_url": "https://img.example/jo.png",
            "preferences": {"theme": "dark"},
        },
    )
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "Jo"
    assert user.get("/v1/me").json()["preferences"] == {"theme": "dark"}


def test_a_name_change_is_pushed_to_billing(api: Api, fake_billing: FakeBillingAccounts) -> None:
    user = api.user("nan@example.com")
    me = user.get("/v1/me").json()
    assert user.patch("/v1/me", json={"preferences": {"a": 1}}).status_code == 200
    assert fake_billing.contacts == []  # nothing billing keeps changed
    assert user.patch("/v1/me", json={"name": "Nan B."}).status_code == 200
    assert fake_billing.contacts == [(me["id"], None, "Nan B.")]
    fake_billing.fail = True  # billing down: the profile edit still stands
    assert user.patch("/v1/me", json={"name": "Nan C."}).status_code == 200
    assert user.get("/v1/me").json()["name"] == "Nan C."


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": 5}, "name"),
        ({"preferences": []}, "preferences"),
        ({"avatar_url": "javascript:alert(1)"}, "avatar_url"),
        ({"name": "x" * 101}, "name"),
        ({"role": "admin"}, "role"),
    ],
)
def test_bad_profile_updates_are_422_and_change_nothing(
    api: Api, body: dict[str, object], field: str
) -> None:
    user = api.user("kim@example.com")
    before = user.get("/v1/me").json()
    r = user.patch("/v1/me", json=body)
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "validation_error"
    assert r.json()["field"] == field
    assert user.get("/v1/me").json() == before


@pytest.mark.parametrize(
    ("kwargs", "status", "field"),
    [
        ({"content": b"{not json", "headers": {"content-type": "application/json"}}, 400, "body"),
        ({"json": [1, 2]}, 400, "body"),
        ({"json": {"email": 5, "password": PASSWORD}}, 422, "email"),
        ({"json": {"email": "lee@example.com"}}, 422, "password"),
        ({"json": {"email": "not-an-email", "password": PASSWORD}}, 422, "email"),
        ({"json": {"email": "lee@example.com", "password": "short"}}, 422, "password"),
        ({"json": {"email": "lee@example.com", "password": PASSWORD, "x": 1}}, 422, "x"),
    ],
)
def test_bad_signup_input(
    api: Api, gateway: RunningGateway, kwargs: dict[str, object], status: int, field: str
) -> None:
    r = api.http.post("/v1/auth/signup", **kwargs)  # type: ignore[arg-type]
    assert r.status_code == status, r.text
    problem = r.json()
    assert problem["code"] == "validation_error"
    assert problem["field"] == field
    assert {"type", "title", "status", "detail"} <= set(problem)
    assert _count(gateway, orm.users) == 0


def test_wrong_media_type_and_oversized_body(api: Api, gateway: RunningGateway) -> None:
    r = api.http.post(
        "/v1/auth/signup",
        content=b"email=a",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 415
    assert r.json()["code"] == "unsupported_media_type"
    big = json.dumps({"email": "m@example.com", "password": PASSWORD, "name": "x" * 2_000_000})
    r = api.http.post("/v1/auth/signup", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert r.json()["code"] == "payload_too_large"
    assert _count(gateway, orm.users) == 0


def test_admin_endpoints_refuse_users_and_promote_admin_cli(
    api: Api, gateway: RunningGateway
) -> None:
    user = api.user("root@example.com")
    r = user.get("/v1/admin/users")
    assert r.status_code == 403
    assert r.json()["code"] == "forbidden"

    settings = gateway.container.settings
    env = {
        **os.environ,
        "GATEWAY_DATABASE_URL": settings.database_url(),
        "ATELIER_DATA_DIR": str(settings.data_dir),
        "GATEWAY_JWT_SECRET": settings.jwt_secret(),
    }
    cli = [sys.executable, "-m", "atelier_gateway.entrypoints.cli"]
    done = subprocess.run(
        [*cli, "promote-admin", "ROOT@example.com"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    missing = subprocess.run(
        [*cli, "promote-admin", "ghost@example.com"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode == 1

    # The role is in the token: a refreshed token carries it.
    r = api.http.post("/v1/auth/refresh", json={"refresh_token": user.refresh_token})
    admin = User(api, user.id, r.json()["access_token"], r.json()["refresh_token"])
    assert r.json()["user"]["role"] == "admin"
    listing = admin.get("/v1/admin/users", params={"query": "root@"})
    assert listing.status_code == 200
    assert [u["email"] for u in listing.json()["items"]] == ["root@example.com"]


def test_operations_endpoints(api: Api, gateway: RunningGateway) -> None:
    assert api.http.get("/healthz").json() == {"status": "ok"}
    r = api.http.get("/healthz", headers={"X-Request-ID": "req-123"})
    assert r.headers["X-Request-ID"] == "req-123"
    generated = api.http.get("/healthz").headers["X-Request-ID"]
    assert len(generated) >= 16
    ready = api.http.get("/readyz")
    assert ready.status_code == 503  # no billing or tasks behind this gateway
    assert ready.json()["checks"]["database"] is True
    metrics = api.http.get("/metrics").text
    assert 'atelier_gateway_http_requests_total{method="GET",route="/healthz",status="200"}' in (
        metrics
    )
    assert "atelier_gateway_http_request_duration_seconds_bucket" in metrics
    r = api.http.get("/v1/nothing-here")
    assert r.status_code == 404 and r.json()["code"] == "not_found"
    r = api.http.delete("/v1/me")
    assert r.status_code == 405 and r.json()["code"] == "method_not_allowed"


def test_openapi_describes_every_route(api: Api, gateway: RunningGateway) -> None:
    from atelier_gateway.entrypoints.http.openapi import registered_operations

    doc = api.http.get("/v1/openapi.json").json()
    assert doc["openapi"].startswith("3.")
    for method, path in registered_operations(gateway.app):
        op = doc["paths"][path][method.lower()]
        assert op["summary"] != "(undocumented)", (method, path)
    for path in ("/v1/auth/signup", "/v1/orders", "/v1/tasks/{task_id}/events", "/v1/me/balance"):
        assert path in doc["paths"]


def test_concurrent_signups_with_one_email_create_one_user(
    api: Api, gateway: RunningGateway
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def attempt(_: int) -> int:
        with httpx.Client(base_url=gateway.url, timeout=30) as c:
            return c.post(
                "/v1/auth/signup", json={"email": "race@example.com", "password": PASSWORD}
            ).status_code

    with ThreadPoolExecutor(8) as pool:
        codes = sorted(pool.map(attempt, range(8)))
    assert codes == [201] + [409] * 7
    assert _count(gateway, orm.users) == 1


def test_rate_limits_answer_429_with_retry_after(tmp_path: Path) -> None:
    clock = FakeClock()
    settings = gateway_settings(
        str(tmp_path / "d"),
        f"sqlite:///{tmp_path / 'g.db'}",
        GATEWAY_AUTH_RATE_LIMIT_PER_MINUTE=6,
        GATEWAY_AUTH_RATE_LIMIT_BURST=3,
        GATEWAY_RATE_LIMIT_PER_MINUTE=60,
        GATEWAY_RATE_LIMIT_BURST=5,
    )
    gw = start_gateway(settings, billing_accounts=FakeBillingAccounts(), clock=clock)
    api = Api(gw.url)
    try:
        login = {"email": "x@example.com", "password": "wrong password"}
        codes = [api.http.post("/v1/auth/login", json=login).status_code for _ in range(4)]
        assert codes == [401, 401, 401, 429]
        limited = api.http.post("/v1/auth/login", json=login)
        assert limited.json()["code"] == "rate_limited"
        assert int(limited.headers["Retry-After"]) >= 1
        clock.advance(seconds=10)  # 6/minute: one more try after 10 s
        assert api.http.post("/v1/auth/login", json=login).status_code == 401
        # The general budget (5 burst) is separate and per client; health checks are exempt.
        statuses = [api.http.get("/v1/catalog").status_code for _ in range(8)]
        assert 429 in statuses
        assert api.http.get("/healthz").status_code == 200
    finally:
        api.close()
        gw.stop()


def test_request_id_is_logged_as_json(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    from atelier_common.logs import JsonFormatter

    caplog.set_level("INFO", logger="atelier.gateway.http")
    api.http.get("/healthz", headers={"X-Request-ID": "log-me-7"})
    lines = [
        json.loads(JsonFormatter().format(r))
        for r in caplog.records
        if r.name == "atelier.gateway.http"
    ]
    assert any(line.get("route") == "/healthz" and line.get("status") == 200 for line in lines)
    assert "password" not in caplog.text


def test_token_lifecycle_on_each_database(database_url: str, tmp_path: Path) -> None:
    """Rotation, reuse detection, concurrent refreshes and log-out on SQLite and PostgreSQL."""
    from concurrent.futures import ThreadPoolExecutor

    settings = gateway_settings(str(tmp_path / "d"), database_url)
    gw = start_gateway(settings, billing_accounts=FakeBillingAccounts())
    api = Api(gw.url)
    try:
        user = api.user("pat@example.com")

        def refresh(_: int) -> int:
            with httpx.Client(base_url=gw.url, timeout=30) as c:
                return c.post(
                    "/v1/auth/refresh", json={"refresh_token": user.refresh_token}
                ).status_code

        with ThreadPoolExecutor(6) as pool:
            codes = sorted(pool.map(refresh, range(6)))
        # One refresh wins; every concurrent copy counts as reuse.
        assert codes == [200] + [401] * 5
        login = api.http.post(
            "/v1/auth/login", json={"email": "pat@example.com", "password": PASSWORD}
        ).json()
        rotated = api.http.post("/v1/auth/refresh", json={"refresh_token": login["refresh_token"]})
        assert rotated.status_code == 200
        token = rotated.json()["refresh_token"]
        assert api.http.post("/v1/auth/logout", json={"refresh_token": token}).status_code == 204
        assert api.http.post("/v1/auth/refresh", json={"refresh_token": token}).status_code == 401
        assert _count(gw, orm.users) == 1
    finally:
        api.close()
        gw.stop()


def test_an_abandoned_idempotency_claim_is_taken_over_when_stale(tmp_path: Path) -> None:
    """A claim left by a gateway that died mid-request blocks retries only for a while."""
    from atelier_gateway.adapters.sqlalchemy_uow import SqlGatewayUnitOfWork
    from atelier_gateway.application.idempotency import request_fingerprint
    from atelier_gateway.domain.model import IdempotencyRecord

    clock = FakeClock()
    settings = gateway_settings(str(tmp_path / "d"), f"sqlite:///{tmp_path / 'g.db'}")
    gw = start_gateway(settings, billing_accounts=FakeBillingAccounts(), clock=clock)
    api = Api(gw.url)
    try:
        user = api.user("quinn@example.com")
        raw = b'{"item_id": "pack_100", "channel": "local"}'
        with SqlGatewayUnitOfWork(gw.container.engine) as uow:
            assert uow.idempotency.claim(
                IdempotencyRecord(
                    user_id=user.id,
                    key="crashed",
                    scope="POST /v1/orders",
                    request_hash=request_fingerprint("POST /v1/orders", raw),
                    created_at=clock.now(),
                )
            )
            uow.commit()

        def retry() -> httpx.Response:
            return user.post(
                "/v1/orders",
                content=raw,
                headers={"Idempotency-Key": "crashed", "content-type": "application/json"},
            )

        assert retry().json()["code"] == "idempotency_key_in_flight"
        clock.advance(minutes=3)
        # Taken over: the call goes through to billing (not running here: 503) and the
        # failed attempt releases the key again.
        assert retry().status_code == 503
        with SqlGatewayUnitOfWork(gw.container.engine) as uow:
            assert uow.idempotency.get(user.id, "crashed") is None
    finally:
        api.close()
        gw.stop()


def test_rate_limits_per_forwarded_client_behind_a_proxy(tmp_path: Path) -> None:
    settings = gateway_settings(
        str(tmp_path / "d"),
        f"sqlite:///{tmp_path / 'g.db'}",
        GATEWAY_AUTH_RATE_LIMIT_PER_MINUTE=1,
        GATEWAY_AUTH_RATE_LIMIT_BURST=2,
        GATEWAY_TRUST_FORWARDED_FOR=True,
    )
    gw = start_gateway(settings, billing_accounts=FakeBillingAccounts(), clock=FakeClock())
    api = Api(gw.url)
    try:
        login = {"email": "x@example.com", "password": "wrong password"}

        def attempt(client: str) -> int:
            headers = {"X-Forwarded-For": f"203.0.113.9, {client}"}
            return api.http.post("/v1/auth/login", json=login, headers=headers).status_code

        assert [attempt("198.51.100.1") for _ in range(3)] == [401, 401, 429]
        assert attempt("198.51.100.2") == 401  # another client behind the same proxy
    finally:
        api.close()
        gw.stop()

"""CORS: only the origins of GATEWAY_CORS_ORIGINS may call the API from a browser."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.gateway.conftest import Api
from tests.gateway.fakes import FakeBillingAccounts
from tests.gateway.harness import (
    RunningGateway,
    gateway_settings,
    start_gateway,
)

APP = "https://app.example.com"
ADMIN = "https://admin.example.com"
EVIL = "https://evil.example.net"


def _gateway(tmp_path: Path, origins: str) -> RunningGateway:
    settings = gateway_settings(
        str(tmp_path / "data"),
        f"sqlite:///{tmp_path / 'gateway.db'}",
        GATEWAY_CORS_ORIGINS=origins,
    )
    return start_gateway(settings, billing_accounts=FakeBillingAccounts())


@pytest.fixture
def cors_api(tmp_path: Path) -> Iterator[Api]:
    gw = _gateway(tmp_path, f" {APP}, {ADMIN}/ ")
    client = Api(gw.url)
    yield client
    client.close()
    gw.stop()


def _preflight(http: httpx.Client, origin: str, path: str = "/v1/tasks") -> httpx.Response:
    return http.options(
        path,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, idempotency-key, content-type, "
            "last-event-id",
        },
    )


def test_an_allowed_origin_gets_cors_headers_with_credentials(cors_api: Api) -> None:
    user = cors_api.user("cors@example.com")
    for origin in (APP, ADMIN):
        r = user.get("/v1/me", headers={"Origin": origin})
        assert r.status_code == 200
        assert r.headers["access-control-allow-origin"] == origin
        assert r.headers["access-control-allow-credentials"] == "true"
        assert "X-Request-ID" in r.headers["access-control-expose-headers"]
    # Error answers are readable by the allowed page too.
    r = cors_api.http.get("/v1/me", headers={"Origin": APP})
    assert r.status_code == 401
    assert r.headers["access-control-allow-origin"] == APP


def test_a_foreign_origin_gets_no_cors_headers(cors_api: Api) -> None:
    user = cors_api.user("evil@example.com")
    r = user.get("/v1/me", headers={"Origin": EVIL})
    assert not [h for h in r.headers if h.lower().startswith("access-control-")]
    r = _preflight(cors_api.http, EVIL)
    assert r.status_code >= 400
    assert not [h for h in r.headers if h.lower().startswith("access-control-")]


def test_preflight_is_answered_for_an_allowed_origin(cors_api: Api) -> None:
    for path in ("/v1/tasks", "/v1/me", "/v1/tasks/tsk_1/events", "/v1/orders"):
        r = _preflight(cors_api.http, APP, path)
        assert r.status_code == 200, (path, r.text)
        assert r.headers["access-control-allow-origin"] == APP
        assert r.headers["access-control-allow-credentials"] == "true"
        allowed = {h.strip().lower() for h in r.headers["access-control-allow-headers"].split(",")}
        assert {"authorization", "idempotency-key", "content-type", "last-event-id"} <= allowed
    r = cors_api.http.options(
        "/v1/tasks",
        headers={
            "Origin": APP,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "x-secret-header",
        },
    )
    assert r.status_code == 403
    assert "access-control-allow-origin" not in r.headers


def test_no_origins_configured_means_same_origin_only(api: Api) -> None:
    user = api.user("same@example.com")
    r = user.get("/v1/me", headers={"Origin": APP})
    assert r.status_code == 200
    assert "access-control-allow-origin" not in r.headers
    r = _preflight(api.http, APP)
    assert "access-control-allow-origin" not in r.headers

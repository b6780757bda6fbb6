"""Browser security (issue 13): the refresh token in an HttpOnly, SameSite=Strict cookie scoped to
/v1/auth (Secure over https), refresh and log-out from that cookie only with the custom header
(CSRF), and the security headers on every answer — through the real gateway over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from http.cookies import SimpleCookie
from pathlib import Path

import httpx
import pytest

from tests.gateway.conftest import PASSWORD, Api
from tests.gateway.fakes import FakeBillingAccounts
from tests.gateway.harness import gateway_settings, start_gateway

COOKIE = {"X-Refresh-Token-Cookie": "1"}


def set_cookie(r: httpx.Response) -> SimpleCookie:
    headers = r.headers.get_list("set-cookie")
    assert len(headers) == 1, headers
    jar: SimpleCookie = SimpleCookie()
    jar.load(headers[0])
    return jar


def signed_up(api: Api, email: str = "cora@example.com") -> tuple[httpx.Response, str]:
    r = api.http.post(
        "/v1/auth/signup", json={"email": email, "password": PASSWORD}, headers=COOKIE
    )
    assert r.status_code == 201, r.text
    return r, set_cookie(r)["atelier_refresh"].value


def test_asked_for_the_cookie_the_refresh_token_is_never_in_the_body(api: Api) -> None:
    r, token = signed_up(api)
    assert r.json()["refresh_token"] == "" and r.json()["access_token"]
    morsel = set_cookie(r)["atelier_refresh"]
    assert token and morsel["httponly"] and morsel["samesite"] == "Strict"
    assert morsel["path"] == "/v1/auth" and not morsel["secure"]  # the public URL is http here
    assert int(morsel["max-age"]) > 86400  # as long as the token lives
    assert r.headers["cache-control"] == "no-store"
    # log-in asks the same way; without the header, the body carries the token as before
    login = {"email": "cora@example.com", "password": PASSWORD}
    cookie_login = api.http.post("/v1/auth/login", json=login, headers=COOKIE)
    assert cookie_login.json()["refresh_token"] == "" and set_cookie(cookie_login)
    plain = httpx.post(f"{api.base_url}/v1/auth/login", json=login)
    assert plain.json()["refresh_token"] and "set-cookie" not in plain.headers


def test_refresh_and_logout_work_from_the_cookie(api: Api) -> None:
    _, first = signed_up(api)
    rotated = api.http.post("/v1/auth/refresh", json={}, headers=COOKIE)
    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["refresh_token"] == "" and rotated.json()["access_token"]
    second = set_cookie(rotated)["atelier_refresh"].value
    assert second != first
    # the old token stopped working (and, reused, ends the family)
    reused = httpx.post(f"{api.base_url}/v1/auth/refresh", json={"refresh_token": first})
    assert reused.status_code == 401

    _, token = signed_up(api, "dora@example.com")
    out = api.http.post("/v1/auth/logout", json={}, headers=COOKIE)
    assert out.status_code == 204
    cleared = set_cookie(out)["atelier_refresh"]
    assert cleared.value == "" and cleared["max-age"] == "0" and cleared["path"] == "/v1/auth"
    assert "atelier_refresh" not in api.http.cookies
    gone = httpx.post(f"{api.base_url}/v1/auth/refresh", json={"refresh_token": token})
    assert gone.status_code == 401  # the session was revoked, not only forgotten
    # no cookie left: a cookie refresh is 401, a log-out is still 204
    assert api.http.post("/v1/auth/refresh", json={}, headers=COOKIE).status_code == 401
    assert api.http.post("/v1/auth/logout", json={}, headers=COOKIE).status_code == 204


def test_the_cookie_is_used_only_with_the_custom_header_and_from_an_allowed_origin(
    api: Api,
) -> None:
    _, token = signed_up(api)
    cookies = {"atelier_refresh": token}
    base = api.base_url
    # what a cross-site form or a simple request could send: no custom header → not used
    for path in ("/v1/auth/refresh", "/v1/auth/logout"):
        r = httpx.post(f"{base}{path}", json={}, cookies=cookies)
        assert r.status_code == 422 and r.json()["code"] == "validation_error"
        form = httpx.post(f"{base}{path}", data={"a": "b"}, cookies=cookies)
        assert form.status_code == 415
    # a page of another origin that got through somehow
    evil = {**COOKIE, "Origin": "https://evil.example"}
    r = httpx.post(f"{base}/v1/auth/refresh", json={}, cookies=cookies, headers=evil)
    assert r.status_code == 403 and r.json()["code"] == "forbidden"
    r = httpx.post(f"{base}/v1/auth/logout", json={}, cookies=cookies, headers=evil)
    assert r.status_code == 403
    # none of that spent the token: the genuine request works
    same = {**COOKIE, "Origin": base}
    r = httpx.post(f"{base}/v1/auth/refresh", json={}, cookies=cookies, headers=same)
    assert r.status_code == 200, r.text


@pytest.fixture
def https_api(tmp_path: Path) -> Iterator[Api]:
    settings = gateway_settings(
        str(tmp_path / "data"),
        f"sqlite:///{tmp_path / 'gateway.db'}",
        GATEWAY_PUBLIC_URL="https://atelier.example",
    )
    gateway = start_gateway(settings, billing_accounts=FakeBillingAccounts())
    client = Api(gateway.url)
    yield client
    client.close()
    gateway.stop()


def test_over_https_the_cookie_is_secure_and_hsts_is_sent(https_api: Api) -> None:
    r, _ = signed_up(https_api)
    assert set_cookie(r)["atelier_refresh"]["secure"]
    assert r.headers["strict-transport-security"] == "max-age=31536000"


def test_every_answer_carries_the_security_headers(api: Api) -> None:
    http = api.http
    answers = {
        "json": http.get("/healthz"),
        "problem": http.get("/v1/me"),
        "not found": http.get("/no/such/page"),
        "openapi": http.get("/v1/openapi.json"),
        "html": http.get("/"),
        "docs": http.get("/docs"),
        "session": http.post("/v1/auth/login", json={"email": "x@example.com", "password": "y"}),
    }
    for what, r in answers.items():
        assert r.headers["x-content-type-options"] == "nosniff", what
        assert r.headers["x-frame-options"] == "DENY", what
        assert r.headers["referrer-policy"], what
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"], what
        assert "strict-transport-security" not in r.headers, what  # http here
    assert answers["json"].headers["content-security-policy"].startswith("default-src 'none'")
    for page in ("html", "docs"):
        assert answers[page].headers["content-type"].startswith("text/html")
        assert scripts_allowed(answers[page].headers["content-security-policy"]) in (
            ["'self'"],
            ["'none'"],
        )  # no inline script, no eval
    assert scripts_allowed(answers["docs"].headers["content-security-policy"]) == ["'self'"]


def scripts_allowed(policy: str) -> list[str]:
    directives = {d.split()[0]: d.split()[1:] for d in policy.split(";") if d.strip()}
    return directives.get("script-src", directives.get("default-src", []))


def test_html_without_a_policy_of_its_own_gets_the_strict_one() -> None:
    from atelier_gateway.entrypoints.http.security_headers import OTHER_POLICY, policy_for

    page = policy_for("/anything", "text/html; charset=utf-8")
    assert scripts_allowed(page) == ["'self'"] and "frame-ancestors 'none'" in page
    assert "unsafe" not in page and "object-src 'none'" in page
    assert "'unsafe-inline'" not in " ".join(scripts_allowed(policy_for("/docs", "text/html")))
    assert policy_for("/v1/me", "application/json") == OTHER_POLICY

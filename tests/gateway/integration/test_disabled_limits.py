"""A rate limit set to 0 per minute is off — the middleware does no work for it — while the other
limit keeps counting."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.gateway.conftest import Api
from tests.gateway.fakes import FakeBillingAccounts
from tests.gateway.harness import gateway_settings, start_gateway
from tests.support.fakes import FakeClock

LOGIN = {"email": "x@example.com", "password": "wrong password"}


@pytest.mark.parametrize(("general", "auth"), [(0, 6), (60, 0), (0, 0)])
def test_each_limit_is_off_at_zero_and_on_otherwise(
    tmp_path: Path, general: int, auth: int
) -> None:
    settings = gateway_settings(
        str(tmp_path / "d"),
        f"sqlite:///{tmp_path / 'g.db'}",
        GATEWAY_RATE_LIMIT_PER_MINUTE=general,
        GATEWAY_RATE_LIMIT_BURST=3,
        GATEWAY_AUTH_RATE_LIMIT_PER_MINUTE=auth,
        GATEWAY_AUTH_RATE_LIMIT_BURST=2,
    )
    gw = start_gateway(settings, billing_accounts=FakeBillingAccounts(), clock=FakeClock())
    api = Api(gw.url)
    try:
        logins = [api.http.post("/v1/auth/login", json=LOGIN).status_code for _ in range(5)]
        reads = [api.http.get("/v1/catalog").status_code for _ in range(5)]
        token = {"Authorization": "Bearer not-a-token"}
        with_token = [api.http.get("/v1/me", headers=token).status_code for _ in range(5)]
    finally:
        api.close()
        gw.stop()
    # The auth budget (2) applies to log-ins only; the general one (3) to every request,
    # log-ins included, keyed by the token where one is sent.
    expected_logins = [401] * 5
    if auth:
        expected_logins[2:] = [429] * 3
    if general:
        expected_logins[3:] = [429] * 2
    assert logins == expected_logins
    assert (429 in reads) is bool(general)
    assert with_token == ([401] * 3 + [429] * 2 if general else [401] * 5)

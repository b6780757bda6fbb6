"""The sandbox checkout and the HTML pages of the gateway (issue 9: finding #1 for
``/sandbox/checkout`` and #10, and the way back to the workbench), over the real gateway and the
real billing service (SQLite and PostgreSQL).

The gateway here runs on a clock the test can move forward, so that a checkout link can be seen
to expire with its order without waiting half an hour.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from atelier_billing.adapters.payments.local import LocalPaymentProvider
from atelier_billing.application.ports.payments import CheckoutMode, CheckoutRequest
from atelier_ports.clock import SystemClock
from tests.gateway.conftest import Api, User
from tests.gateway.harness import RunningGateway, gateway_settings, reserve_socket, start_gateway
from tests.support.billing_server import RunningBilling, start_billing_server


class MovableClock:
    """The real time plus an offset the test sets."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset


@dataclass
class Sandbox:
    gateway: RunningGateway
    billing: RunningBilling
    api: Api
    clock: MovableClock

    @property
    def http(self) -> httpx.Client:
        return self.api.http


@pytest.fixture
def sandbox(database_url: str, billing_database_url: str, tmp_path: Path) -> Iterator[Sandbox]:
    sock = reserve_socket()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    billing = start_billing_server(
        billing_database_url,
        GATEWAY_PUBLIC_URL=url,
        ATELIER_DATA_DIR=str(tmp_path / "billing-data"),
    )
    clock = MovableClock()
    settings = gateway_settings(
        str(tmp_path / "data"),
        database_url,
        GATEWAY_PUBLIC_URL=url,
        BILLING_ADDRESS=billing.address,
        ATELIER_INTERNAL_TOKEN=billing.internal_token,
    )
    gateway = start_gateway(settings, sock=sock, clock=clock)
    api = Api(gateway.url)
    try:
        yield Sandbox(gateway=gateway, billing=billing, api=api, clock=clock)
    finally:
        api.close()
        gateway.stop()
        billing.stop()


def _order(user: User, item_id: str = "pack_100") -> dict[str, Any]:
    r = user.post("/v1/orders", json={"item_id": item_id, "channel": "local"})
    assert r.status_code == 201, r.text
    return dict(r.json())


def _status(user: User, order_id: str) -> str:
    r = user.get(f"/v1/orders/{order_id}")
    assert r.status_code == 200, r.text
    return str(r.json()["status"])


def _token(url: str) -> str:
    return parse_qs(urlsplit(url).query)["token"][0]


def _path(url: str) -> str:
    """The checkout URL without its scheme and host (what the browser asks for)."""
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


def _forged(token: str) -> str:
    """The same token with the last character of its MAC changed."""
    return token[:-1] + ("0" if token[-1] != "0" else "1")


def _assert_html_page(r: httpx.Response) -> None:
    assert r.headers["content-type"].startswith("text/html")
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["referrer-policy"] == "no-referrer"
    assert r.headers["cache-control"] == "no-store"
    assert r.headers["x-content-type-options"] == "nosniff"
    csp = r.headers["content-security-policy"]
    directives = {d.split()[0]: d.split()[1:] for d in csp.split(";") if d.strip()}
    assert directives["default-src"] == ["'none'"]  # so no script of any kind
    assert "script-src" not in directives and "'unsafe-inline'" not in csp
    assert directives["frame-ancestors"] == ["'none'"]
    assert directives["form-action"] == ["'self'"]
    # The one inline stylesheet is allowed by its hash, nothing else.
    style = re.search(r"<style>(.*?)</style>", r.text, re.S)
    assert style is not None
    digest = base64.b64encode(hashlib.sha256(style.group(1).encode()).digest()).decode()
    assert directives["style-src"] == [f"'sha256-{digest}'"]
    assert "<script" not in r.text.lower()
    assert not re.search(r"\son[a-z]+\s*=", r.text, re.I)  # no inline event handlers


# ---- finding #1: a multipart form without a boundary -----------------------------------------


def test_f1_sandbox_checkout_multipart_without_boundary_is_400_and_changes_nothing(
    sandbox: Sandbox,
) -> None:
    user = sandbox.api.user("bo@example.com")
    order = _order(user)
    path = _path(order["checkout"]["url"])
    for target in (path, "/sandbox/checkout/ord_unknown"):
        r = sandbox.http.post(
            target, content=b"outcome=paid", headers={"Content-Type": "multipart/form-data"}
        )
        assert r.status_code == 400, r.text
        _assert_html_page(r)
        assert "could not be read" in r.text
    # Other unreadable forms: a broken part, an unknown charset, a body that is not a form.
    for content_type, body in (
        ("multipart/form-data; boundary=xx", b"--xx\r\nno end"),
        ("multipart/form-data; boundary=xx", b"garbage"),
        (
            "multipart/form-data; boundary=xx",
            b"--xx\r\nContent-Transfer-Encoding: bogus\r\n"
            b"Content-Disposition: form-data; name=outcome\r\n\r\npaid\r\n--xx--\r\n",
        ),
        ("application/x-www-form-urlencoded; charset=bogus", b"outcome=paid"),
        ("application/x-www-form-urlencoded", b"\xff\xfe=paid"),
        ("application/json", b'{"outcome": "paid"}'),
    ):
        r = sandbox.http.post(path, content=body, headers={"Content-Type": content_type})
        assert r.status_code == 400, (content_type, r.status_code, r.text)
    assert _status(user, order["id"]) == "pending"
    assert user.get("/v1/me/balance").json()["available"] == 10


def test_sandbox_checkout_accepts_the_form_as_multipart_too(sandbox: Sandbox) -> None:
    """A browser form sent with ``enctype="multipart/form-data"`` works like the default one
    (the body used to be read once before the form parser, which then found it empty)."""
    user = sandbox.api.user("mo@example.com")
    order = _order(user)
    r = sandbox.http.post(_path(order["checkout"]["url"]), files={"outcome": (None, "paid")})
    assert r.status_code == 303, r.text
    assert _status(user, order["id"]) == "paid"


# ---- finding #10: checkout links are signed, expire with the order, and are the only way in ---


def test_f10_checkout_url_carries_a_signed_token_tied_to_the_order(sandbox: Sandbox) -> None:
    ann = sandbox.api.user("ann@example.com")
    bob = sandbox.api.user("bob@example.com")
    first, second, bobs = _order(ann), _order(ann, "pack_500"), _order(bob)
    url = first["checkout"]["url"]
    assert url.startswith(f"{sandbox.gateway.url}/sandbox/checkout/{first['id']}?token=")
    token = _token(url)
    expiry, _, mac = token.split(".")
    expires_at = datetime.fromisoformat(first["checkout"]["expires_at"].replace("Z", "+00:00"))
    assert int(expiry) == int(expires_at.timestamp())  # it expires with the order
    assert re.fullmatch(r"[0-9a-f]{64}", mac)
    assert len({token, _token(second["checkout"]["url"]), _token(bobs["checkout"]["url"])}) == 3

    page = sandbox.http.get(_path(url))
    assert page.status_code == 200, page.text
    _assert_html_page(page)
    assert first["number"] in page.text
    assert 'value="paid"' in page.text and 'value="failed"' in page.text
    assert f'action="/sandbox/checkout/{first["id"]}?token={token}"' in page.text

    checkout = f"/sandbox/checkout/{first['id']}"
    refused = [
        checkout,  # no token
        f"{checkout}?token=",
        f"{checkout}?token={_forged(token)}",
        f"{checkout}?token={_token(second['checkout']['url'])}",  # another order's token
        f"{checkout}?token={_token(bobs['checkout']['url'])}",  # another user's order's token
        f"{checkout}?token={token}x",
        f"{checkout}?token=" + "9" * 12 + "." + token.split(".", 1)[1],  # a later expiry
        f"/sandbox/checkout/ord_{'0' * 32}?token={token}",  # an order that does not exist
        f"/sandbox/checkout/{bobs['id']}?token={token}",
        "/sandbox/checkout/%3Cscript%3Ealert(1)%3C%2Fscript%3E?token=%3Cb%3E",
        f"{checkout}?token=1.{'A' * 300}.{'0' * 64}",
        f"{checkout}?token=1.%2F%2F.{'0' * 64}",
    ]
    bodies = set()
    for target in refused:
        r = sandbox.http.get(target)
        assert r.status_code == 404, (target, r.status_code)
        _assert_html_page(r)
        assert "<script>" not in r.text and "Pay</button>" not in r.text
        bodies.add(r.text)
    assert len(bodies) == 1  # one answer for all: a page never tells whether an order exists


def test_f10_pay_and_fail_need_the_token_and_change_nothing_without_it(sandbox: Sandbox) -> None:
    user = sandbox.api.user("cy@example.com")
    order = _order(user)
    url = order["checkout"]["url"]
    token = _token(url)
    checkout = f"/sandbox/checkout/{order['id']}"
    for target in (checkout, f"{checkout}?token={_forged(token)}"):
        for outcome in ("failed", "paid"):
            r = sandbox.http.post(target, data={"outcome": outcome})
            assert r.status_code == 404, r.text
            _assert_html_page(r)
    assert _status(user, order["id"]) == "pending"
    assert user.get("/v1/me/balance").json()["available"] == 10

    failed = sandbox.http.post(_path(url), data={"outcome": "failed"})
    assert failed.status_code == 303, failed.text
    assert failed.headers["location"] == f"/orders/{order['id']}?token={token}"
    assert failed.headers["referrer-policy"] == "no-referrer"
    assert _status(user, order["id"]) == "failed"
    page = sandbox.http.get(failed.headers["location"])
    assert page.status_code == 200 and "failed" in page.text
    assert "Payment received" not in page.text
    # Pressing a button again changes nothing and leads to the same truthful page.
    again = sandbox.http.post(_path(url), data={"outcome": "paid"})
    assert again.status_code == 303 and again.headers["location"] == failed.headers["location"]
    assert _status(user, order["id"]) == "failed"
    assert user.get("/v1/me/balance").json()["available"] == 10
    shown = sandbox.http.get(_path(url))
    assert shown.status_code == 200 and "Pay</button>" not in shown.text


def test_f10_order_page_shows_the_real_state_never_the_query(sandbox: Sandbox) -> None:
    user = sandbox.api.user("di@example.com")
    order = _order(user)
    token = _token(order["checkout"]["url"])
    page = f"/orders/{order['id']}"

    unknown = sandbox.http.get(f"/orders/ord_{'0' * 32}?outcome=paid")
    assert unknown.status_code == 404 and "Payment received" not in unknown.text
    _assert_html_page(unknown)
    for target in (
        f"{page}?outcome=paid",
        f"{page}?outcome=paid&token={_forged(token)}",
        f"/orders/%3Cimg%20src%3Dx%3E?token={token}",
    ):
        r = sandbox.http.get(target)
        assert r.status_code == 404, target
        assert r.text == unknown.text  # not even whether the order exists

    pending = sandbox.http.get(f"{page}?outcome=paid&token={token}")
    assert pending.status_code == 200, pending.text
    _assert_html_page(pending)
    assert "pending" in pending.text and "Payment received" not in pending.text
    assert order["number"] in pending.text

    paid = sandbox.http.post(_path(order["checkout"]["url"]), data={"outcome": "paid"})
    assert paid.status_code == 303
    after = sandbox.http.get(f"{page}?outcome=failed&token={token}")
    assert after.status_code == 200
    assert "paid" in after.text and "Payment received" in after.text
    assert "The payment failed" not in after.text
    assert user.get("/v1/me/balance").json()["available"] == 110


def test_f10_checkout_link_expires_with_its_order(sandbox: Sandbox) -> None:
    user = sandbox.api.user("ed@example.com")
    order = _order(user)
    url = order["checkout"]["url"]
    token = _token(url)
    assert sandbox.http.get(_path(url)).status_code == 200

    expires_at = datetime.fromisoformat(order["checkout"]["expires_at"].replace("Z", "+00:00"))
    sandbox.clock.offset = expires_at - datetime.now(UTC) + timedelta(seconds=1)
    expired = sandbox.http.get(_path(url))
    assert expired.status_code == 404
    assert sandbox.http.get(f"/sandbox/checkout/{order['id']}").text == expired.text
    assert sandbox.http.post(_path(url), data={"outcome": "paid"}).status_code == 404
    assert sandbox.http.get(f"/orders/{order['id']}?token={token}").status_code == 404

    sandbox.clock.offset = timedelta(0)  # back to now, where the user's session is valid
    assert _status(user, order["id"]) == "pending"
    assert user.get("/v1/me/balance").json()["available"] == 10


def test_local_provider_token_binds_order_user_expiry_and_secret(tmp_path: Path) -> None:
    def url(secret: str = "s1", **changes: Any) -> str:
        provider = LocalPaymentProvider(
            secret=secret,
            checkout_base_url="http://gateway.test/",
            webhook_url="http://gateway.test/webhooks/local",
            records_dir=tmp_path,
            clock=SystemClock(),
        )
        values: dict[str, Any] = {
            "order_id": "ord_1",
            "order_number": "AT-1",
            "user_id": "usr_1",
            "item_id": "pack_100",
            "item_name": "100 credits",
            "amount": 500,
            "currency": "USD",
            "mode": CheckoutMode.ONE_TIME,
            "expires_at": datetime(2030, 1, 1, tzinfo=UTC),
        }
        values.update(changes)
        checkout = provider.create_checkout(CheckoutRequest(**values))
        assert checkout.url is not None
        return checkout.url

    base = url()
    assert base.startswith("http://gateway.test/sandbox/checkout/ord_1?token=")
    assert base == url()  # the same order gets the same link (a retried checkout)
    variants = {
        url(secret="s2"),
        url(order_id="ord_2"),
        url(user_id="usr_2"),
        url(expires_at=datetime(2030, 1, 1, 0, 0, 1, tzinfo=UTC)),
    }
    assert base not in variants and len(variants) == 4
    assert _token(base).split(".")[0] == str(int(datetime(2030, 1, 1, tzinfo=UTC).timestamp()))


# ---- the sandbox pages lead back to the workbench ------------------------------------------------


def test_sandbox_pages_link_back_to_the_workbench(sandbox: Sandbox) -> None:
    user = sandbox.api.user("gus@example.com")
    order = _order(user)
    checkout = sandbox.http.get(_path(order["checkout"]["url"]))
    assert f'href="/#/orders/{order["id"]}"' in checkout.text  # leave without paying
    paid = sandbox.http.post(
        _path(order["checkout"]["url"]), data={"outcome": "paid"}, follow_redirects=True
    )
    assert paid.status_code == 200
    assert f'href="/#/orders/{order["id"]}"' in paid.text  # back to the order in the workbench


def test_provider_return_page_says_what_happens_next_without_revealing_the_order(
    sandbox: Sandbox,
) -> None:
    """Stripe's success/cancel URLs (``/orders/{id}?checkout=…``) carry no sandbox token."""
    user = sandbox.api.user("fay@example.com")
    order = _order(user)
    unknown = f"/orders/ord_{'0' * 32}"
    for outcome, words in (("success", "Thank you"), ("cancel", "cancelled")):
        mine = sandbox.http.get(f"/orders/{order['id']}?checkout={outcome}")
        other = sandbox.http.get(f"{unknown}?checkout={outcome}")
        assert mine.status_code == other.status_code == 200
        _assert_html_page(mine)
        assert words in mine.text
        assert mine.text == other.text  # not even whether the order exists
        assert order["number"] not in mine.text
    assert sandbox.http.get(f"/orders/{order['id']}?checkout=other").status_code == 404
    # Only the order page is a provider's landing: the checkout itself still needs its token.
    assert sandbox.http.get(f"/sandbox/checkout/{order['id']}?checkout=success").status_code == 404

"""Odd input is a clear 4xx problem, never a 5xx (issue 9, findings #1-#4 and #8).

Each test names its finding. The gateway runs for real (SQLite, billing's account port faked)
unless the finding needs billing or tasks behind it (then the real stack).
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from atelier_common.grpc_client import RemoteCallError

from atelier_gateway.entrypoints.http.problems import from_remote_error
from tests.gateway.conftest import Api, Stack, User
from tests.gateway.harness import RunningGateway

JSON = {"content-type": "application/json"}
DEEP = b"[" * 100_000

# Every route that reads a JSON body, with whether it needs a bearer token.
JSON_BODY_ROUTES: list[tuple[str, str, bool]] = [
    ("POST", "/v1/auth/signup", False),
    ("POST", "/v1/auth/login", False),
    ("POST", "/v1/auth/refresh", False),
    ("POST", "/v1/auth/logout", False),
    ("PATCH", "/v1/me", True),
    ("POST", "/v1/orders", True),
    ("POST", "/v1/uploads", True),
    ("POST", "/v1/tasks", True),
]
# Page tokens no listing ever issued: too big for any integer column, garbage, and a well-formed
# token of another listing.
BAD_TOKENS = [
    "9999999999999999999999999",
    "-1",
    "not a token!",
    "eyJrIjoib3RoZXIiLCJ2IjpbMV19",  # {"k":"other","v":[1]}
    "x" * 600,
]


def _problem(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, (r.status_code, r.text[:300])
    assert r.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = r.json()
    assert body["code"] == code, body
    return body


def _admin(api: Api, gateway: RunningGateway, email: str) -> User:
    user = api.user(email)
    gateway.container.promote_admin(email)
    r = api.http.post("/v1/auth/refresh", json={"refresh_token": user.refresh_token})
    return User(api, user.id, r.json()["access_token"], r.json()["refresh_token"])


# --- #1 multipart without a boundary ----------------------------------------------------------


def test_finding1_local_upload_without_multipart_boundary_is_400(api: Api) -> None:
    for content_type in ("multipart/form-data", "multipart/form-data; charset=utf-8"):
        r = api.http.post(
            "/uploads", content=b"--x\r\n\r\n--x--", headers={"content-type": content_type}
        )
        body = _problem(r, 400, "validation_error")
        assert "boundary" in body["detail"]
    # A boundary that never appears in the body is malformed too, never a 500.
    r = api.http.post(
        "/uploads", content=b"garbage", headers={"content-type": "multipart/form-data; boundary=zz"}
    )
    assert 400 <= r.status_code < 500, r.text
    r = api.http.post("/uploads", content=b"{}", headers=JSON)
    _problem(r, 415, "unsupported_media_type")


def _form(headers: bytes, data: bytes) -> bytes:
    return b"--XX\r\n" + headers + b"\r\n\r\n" + data + b"\r\n--XX--\r\n"


@pytest.mark.parametrize(
    "body",
    [
        _form(b'Content-Disposition: form-data; name="key"\r\nContent-Encoding: gzip', b"no"),
        _form(b'Content-Disposition: form-data; name="key"\r\nContent-Transfer-Encoding: x', b"1"),
        _form(
            b'Content-Disposition: form-data; name="key"\r\nContent-Transfer-Encoding: base64', b"@"
        ),
        _form(b'Content-Disposition: form-data; name="\xff"', b"x"),
        _form(b"Content-Type: multipart/mixed; boundary=YY", b"--YY--"),
        b'--XX\r\nContent-Disposition: form-data; name="key"\r\n\r\nabc',
        b"",
    ],
    ids=["gzip", "unknown-transfer-encoding", "base64", "non-utf8-name", "nested", "cut", "empty"],
)
def test_finding1_malformed_multipart_forms_are_4xx(api: Api, body: bytes) -> None:
    r = api.http.post(
        "/uploads", content=body, headers={"content-type": "multipart/form-data; boundary=XX"}
    )
    _problem(r, 400, "validation_error")


# --- #2 upload size beyond any integer ------------------------------------------------------


def test_finding2_upload_size_is_bounded_by_the_configured_upload_limit(
    api: Api, gateway: RunningGateway
) -> None:
    user = api.user("size@example.com")
    limit = gateway.container.settings.upload_max_bytes
    for size in (2**63, 2**64 + 5, 10**30, limit + 1):
        r = user.post("/v1/uploads", json={"content_type": "image/png", "size": size})
        body = _problem(r, 422, "validation_error")
        assert body["field"] == "size", body
        assert str(limit) in body["detail"]
    # Types are strict: a JSON string or a boolean is not an integer.
    for odd in ("10", True, 1.5, 0, -3, None):
        r = user.post("/v1/uploads", json={"content_type": "image/png", "size": odd})
        assert _problem(r, 422, "validation_error")["field"] == "size", odd
    doc = api.http.get("/v1/openapi.json").json()
    declared = doc["components"]["schemas"]["CreateUploadRequest"]["properties"]["size"]
    assert declared["maximum"] == limit and declared["minimum"] == 1


# --- #3 page tokens ---------------------------------------------------------------------------


def test_finding3_admin_user_listing_takes_opaque_tokens_and_refuses_bad_ones(
    api: Api, gateway: RunningGateway
) -> None:
    admin = _admin(api, gateway, "root@example.com")
    for i in range(4):
        api.user(f"member{i}@example.com")
    seen: list[str] = []
    token = ""
    while True:
        params = {"page_size": 2, **({"page_token": token} if token else {})}
        r = admin.get("/v1/admin/users", params=params)
        assert r.status_code == 200, r.text
        seen += [u["email"] for u in r.json()["items"]]
        token = r.json()["next_page_token"]
        if not token:
            break
        assert not token.isdigit()  # opaque, not an offset
    assert len(seen) == len(set(seen)) == 5
    for bad in BAD_TOKENS:
        r = admin.get("/v1/admin/users", params={"page_token": bad})
        body = _problem(r, 400, "validation_error")
        assert body["field"] == "page_token", (bad, body)


def test_finding3_remote_invalid_page_token_is_400_validation_error() -> None:
    """How the gateway maps billing's and tasks' answer to a bad token (atelier_ports.paging)."""
    error = RemoteCallError(
        service="billing",
        status="INVALID_ARGUMENT",
        message="page_token is not valid",
        reason="INVALID_PAGE_TOKEN",
        metadata={"field": "page_token"},
    )
    problem = from_remote_error(error)
    assert (problem.status, problem.code, problem.field) == (400, "validation_error", "page_token")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_finding3_every_list_answers_a_bad_page_token_with_400(full_stack: Stack) -> None:
    """Needs billing's and tasks' opaque tokens (their branches of issue 9) to pass."""
    user = full_stack.api.user("pager@example.com")
    for path in ("/v1/me/ledger", "/v1/orders", "/v1/tasks", "/v1/images"):
        for bad in BAD_TOKENS:
            r = user.get(path, params={"page_token": bad})
            body = _problem(r, 400, "validation_error")
            assert body["field"] == "page_token", (path, bad, body)


# --- #4 deeply nested JSON --------------------------------------------------------------------


def test_finding4_deeply_nested_json_is_400_on_every_json_route(api: Api) -> None:
    user = api.user("deep@example.com")
    for method, path, needs_token in JSON_BODY_ROUTES:
        headers = {**JSON, **(user.auth if needs_token else {})}
        for body in (DEEP, b'{"a":' * 50_000):
            r = api.http.request(method, path, content=body, headers=headers)
            problem = _problem(r, 400, "validation_error")
            assert problem["field"] == "body", (method, path)
    # Nesting inside a well-formed object is bounded too (422: the body is JSON, a field is bad).
    nested: Any = 1
    for _ in range(100):
        nested = {"a": nested}
    r = user.patch("/v1/me", json={"preferences": nested})
    assert _problem(r, 422, "validation_error")["field"] == "preferences"
    r = user.post("/v1/tasks", json={"type": "text_to_image", "params": nested})
    assert _problem(r, 422, "validation_error")["field"] == "params"
    # Neither NaN nor Infinity is JSON.
    r = user.patch("/v1/me", content=b'{"preferences": {"x": NaN}}', headers={**JSON, **user.auth})
    _problem(r, 400, "validation_error")


def test_last_event_id_out_of_range_is_400(api: Api) -> None:
    user = api.user("sse@example.com")
    for value in ("99999999999999999999999", "-1", "1e3", "12a"):
        r = user.get("/v1/tasks/tsk_1/events", headers={"Last-Event-ID": value})
        assert _problem(r, 400, "validation_error")["field"] == "Last-Event-ID", value


# --- #8 internal names, and one rule for bad filters ------------------------------------------


def test_finding8_service_field_names_become_api_names() -> None:
    for internal, api_name in (("input_keys", "input_upload_id"), ("size_bytes", "size")):
        error = RemoteCallError(
            service="tasks",
            status="INVALID_ARGUMENT",
            message=f"{internal} is not valid",
            reason="INVALID_PARAMS",
            metadata={"field": internal},
        )
        problem = from_remote_error(error)
        assert problem.field == api_name and problem.status == 422
        assert internal not in problem.detail and api_name in problem.detail


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_finding8_no_internal_name_reaches_a_client(paused_stack: Stack) -> None:
    user = paused_stack.api.user("names@example.com")
    r = user.post("/v1/tasks", json={"type": "basic_clean"})
    body = _problem(r, 422, "validation_error")
    assert body["field"] == "input_upload_id" and "input_keys" not in r.text
    r = user.post(
        "/v1/tasks", json={"type": "basic_clean", "input_upload_id": "someone-else/up/x.png"}
    )
    body = _problem(r, 422, "validation_error")
    assert body["field"] == "input_upload_id" and "input_keys" not in r.text
    # Larger than what the tasks service accepts, but not than the gateway's limit.
    r = user.post("/v1/uploads", json={"content_type": "image/png", "size": 16 * 1024 * 1024})
    if r.status_code != 201:
        body = _problem(r, 422, "validation_error")
        assert body["field"] == "size" and "size_bytes" not in r.text


def test_finding8_bad_status_and_type_filters_follow_one_rule(
    api: Api, gateway: RunningGateway
) -> None:
    """Bad query parameters are 400, bad bodies 422, for status and type alike."""
    admin = _admin(api, gateway, "rule@example.com")
    for path, names in (
        ("/v1/tasks", ("status", "type")),
        ("/v1/admin/tasks", ("status", "type")),
        ("/v1/images", ("type",)),
    ):
        for name in names:
            r = admin.get(path, params={name: "sleeping"})
            assert _problem(r, 400, "validation_error")["field"] == name, (path, name)
    for name in ("page_size",):
        for value in ("0", "101", "ten", "1.5"):
            r = admin.get("/v1/tasks", params={name: value})
            assert _problem(r, 400, "validation_error")["field"] == name, value
    r = admin.post("/v1/tasks", json={"type": "sleeping"})
    assert _problem(r, 422, "validation_error")["field"] == "type"


# --- 5xx answers never carry internal text ----------------------------------------------------


def test_a_5xx_from_a_remote_error_has_a_generic_detail() -> None:
    for status, code in (("UNAVAILABLE", 503), ("DEADLINE_EXCEEDED", 504), ("INTERNAL", 500)):
        error = RemoteCallError(
            service="billing",
            status=status,
            message="psycopg.OperationalError: connection to 10.0.0.7 refused",
            reason="",
            metadata={},
        )
        problem = from_remote_error(error)
        assert problem.status == code
        assert "10.0.0.7" not in problem.detail and "psycopg" not in problem.detail


def test_an_unreachable_service_is_503_with_a_generic_detail(api: Api) -> None:
    user = api.user("down@example.com")  # nothing listens at billing's or tasks' address
    for path in ("/v1/me/balance", "/v1/tasks"):
        r = user.get(path)
        body = _problem(r, 503, "unavailable")
        assert "127.0.0.1" not in r.text and "grpc" not in r.text.lower(), body


# --- found by probing: NUL characters and undecodable headers ---------------------------------


def test_nul_characters_are_refused_before_any_database_sees_them(stack: Stack) -> None:
    """PostgreSQL text cannot hold NUL: it must be a 4xx on both engines, never a 500."""
    api = stack.api
    r = api.http.post("/v1/auth/signup", json={"email": "a\x00@example.com", "password": "x" * 12})
    assert _problem(r, 422, "validation_error")["field"] == "email"
    user = api.user("nul@example.com")
    r = user.patch("/v1/me", json={"preferences": {"theme": ["dark", "a\x00"]}})
    assert _problem(r, 422, "validation_error")["field"] == "preferences.theme.1"
    r = user.patch("/v1/me", json={"preferences": {"k\x00": 1}})
    assert _problem(r, 422, "validation_error")["field"] == "preferences"
    r = user.get("/v1/me/ledger", params={"page_token": "a\x00b"})
    assert _problem(r, 400, "validation_error")["field"] == "page_token"
    assert user.get("/v1/me").json()["preferences"] == {}


def test_an_undecodable_authorization_header_is_401(gateway: RunningGateway) -> None:
    import socket

    with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as s:
        s.sendall(b"GET /v1/me HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \xff\xfe\r\n\r\n")
        status_line = s.recv(200).split(b"\r\n")[0]
    assert status_line.startswith(b"HTTP/1.1 401"), status_line


@pytest.mark.parametrize("provider", ["local", "replicate"])
def test_a_webhook_with_undecodable_header_bytes_is_400_invalid_signature(
    gateway: RunningGateway, provider: str
) -> None:
    import socket

    request = (
        f"POST /webhooks/{provider} HTTP/1.1\r\nHost: x\r\n".encode()
        + b"X-Signature: \xff\xfe\r\nContent-Length: 2\r\n\r\n{}"
    )
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as s:
        s.sendall(request)
        answer = s.recv(1000)
    assert answer.startswith(b"HTTP/1.1 400"), answer[:100]
    assert b'"invalid_signature"' in answer


# --- task parameters beyond interoperable JSON ----------------------------------------------


@pytest.mark.parametrize(
    "params", [b'{"n": 1' + b"0" * 400 + b"}", b'{"a": [1, {"b": -' + b"9" * 320 + b"}]}"]
)
def test_task_params_beyond_a_double_are_422_before_any_call(api: Api, params: bytes) -> None:
    """A number beyond a double is no interoperable JSON (RFC 8259): the route refuses it with a
    422 naming ``params`` (tasks is not even reachable here), and the Idempotency-Key stays free."""
    user = api.user("params@example.com")
    body = b'{"type": "text_to_image", "params": ' + params + b"}"
    r = user.post("/v1/tasks", content=body, headers={**JSON, "Idempotency-Key": "k1"})
    problem = _problem(r, 422, "validation_error")
    assert problem["field"] == "params"
    assert problem["detail"] == "params must be a JSON object of simple values"
    # The key was never claimed: the same key with another body is no "key reused" conflict; it
    # goes on to the tasks service (which does not run here).
    good = {"type": "text_to_image", "params": {"prompt": "a chair"}}
    r = user.post("/v1/tasks", json=good, headers={"Idempotency-Key": "k1"})
    _problem(r, 503, "unavailable")

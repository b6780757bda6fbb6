"""The served OpenAPI document matches what the gateway really answers (issue 9, finding #5).

Every operation is driven through the real stack (gateway, billing, tasks with its worker), for
its success and for its error answers, and each response is validated with jsonschema against the
schema the document declares for that operation, status and media type.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator, FormatChecker

from tests.gateway.conftest import Stack, User
from tests.gateway.e2e.test_phone_login import console_code
from tests.gateway.e2e.test_tasks import jpeg, read_events, wait_for_status

SQLITE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


class ContractChecker:
    """Validates responses against the document and remembers which operations it saw."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        self.seen: set[tuple[str, str]] = set()
        self.statuses: set[tuple[str, str, int]] = set()

    def check(self, method: str, template: str, r: httpx.Response) -> httpx.Response:
        op = self.doc["paths"][template][method.lower()]
        declared = op["responses"].get(str(r.status_code))
        assert declared is not None, (method, template, r.status_code, r.text[:300])
        self.seen.add((method, template))
        self.statuses.add((method, template, r.status_code))
        content = declared.get("content")
        if not content:
            assert not r.content, (method, template, r.status_code)
            return r
        media = r.headers.get("content-type", "").split(";")[0].strip()
        if media not in content:
            media = media.split("/")[0] + "/*"
        assert media in content, (method, template, media, list(content))
        schema = content[media].get("schema")
        if media.endswith("json") and schema:
            full = {"components": self.doc["components"], **schema}
            errors = sorted(
                Draft202012Validator(full, format_checker=FormatChecker()).iter_errors(r.json()),
                key=str,
            )
            assert not errors, (method, template, r.status_code, [e.message for e in errors])
        return r


@pytest.fixture
def contract(full_stack: Stack) -> Iterator[ContractChecker]:
    doc = full_stack.api.http.get("/v1/openapi.json").json()
    yield ContractChecker(doc)


def _admin(stack: Stack, email: str) -> User:
    user = stack.api.user(email)
    stack.gateway.container.promote_admin(email)
    r = stack.api.http.post("/v1/auth/refresh", json={"refresh_token": user.refresh_token})
    return User(stack.api, user.id, r.json()["access_token"], r.json()["refresh_token"])


@SQLITE
def test_every_operation_answers_what_the_openapi_document_says(
    full_stack: Stack, contract: ContractChecker, caplog: pytest.LogCaptureFixture
) -> None:
    stack, c, http = full_stack, contract, full_stack.api.http
    anon_json = {"content-type": "application/json"}

    # --- auth and profile
    r = c.check(
        "POST",
        "/v1/auth/signup",
        http.post(
            "/v1/auth/signup",
            json={"email": "kim@example.com", "password": "correct horse battery"},
        ),
    )
    assert r.status_code == 201
    user = User(
        stack.api, r.json()["user"]["id"], r.json()["access_token"], r.json()["refresh_token"]
    )
    c.check(
        "POST",
        "/v1/auth/signup",
        http.post(
            "/v1/auth/signup",
            json={"email": "kim@example.com", "password": "correct horse battery"},
        ),
    )  # 409
    c.check("POST", "/v1/auth/signup", http.post("/v1/auth/signup", json={"email": 1}))  # 422
    c.check(
        "POST", "/v1/auth/signup", http.post("/v1/auth/signup", content=b"{", headers=anon_json)
    )
    c.check("POST", "/v1/auth/signup", http.post("/v1/auth/signup", content=b"x"))  # 415
    c.check(
        "POST",
        "/v1/auth/login",
        http.post(
            "/v1/auth/login", json={"email": "kim@example.com", "password": "correct horse battery"}
        ),
    )
    c.check(
        "POST",
        "/v1/auth/login",
        http.post(
            "/v1/auth/login", json={"email": "kim@example.com", "password": "wrong wrong wrong"}
        ),
    )  # 401
    spare = http.post(
        "/v1/auth/login", json={"email": "kim@example.com", "password": "correct horse battery"}
    ).json()
    r = c.check(
        "POST",
        "/v1/auth/refresh",
        http.post("/v1/auth/refresh", json={"refresh_token": spare["refresh_token"]}),
    )
    c.check(
        "POST",
        "/v1/auth/logout",
        http.post("/v1/auth/logout", json={"refresh_token": r.json()["refresh_token"]}),
    )  # 204
    c.check(
        "POST",
        "/v1/auth/refresh",
        http.post("/v1/auth/refresh", json={"refresh_token": r.json()["refresh_token"]}),
    )  # 401
    me = c.check("GET", "/v1/me", user.get("/v1/me")).json()
    assert me["phone"] is None and me["avatar_url"] is None  # nullable, and declared so
    c.check("GET", "/v1/me", http.get("/v1/me"))  # 401
    c.check(
        "PATCH",
        "/v1/me",
        user.patch(
            "/v1/me",
            json={
                "name": "Kim",
                "avatar_url": "https://example.com/a.png",
                "preferences": {"a": 1},
            },
        ),
    )
    c.check("PATCH", "/v1/me", user.patch("/v1/me", json={"avatar_url": None}))
    c.check("PATCH", "/v1/me", user.patch("/v1/me", json={"name": None}))  # 422

    # --- phone + SMS log-in (the console adapter writes the code to the log)
    caplog.set_level("INFO", logger="atelier.gateway.sms")
    sms_send, sms_verify = "/v1/auth/sms/send", "/v1/auth/sms/verify"
    phone = "+8613800138000"
    c.check("POST", sms_send, http.post(sms_send, json={"phone": phone}))  # 202
    c.check("POST", sms_send, http.post(sms_send, json={"phone": phone}))  # 429
    c.check("POST", sms_send, http.post(sms_send, json={"phone": "nope"}))  # 422
    wrong = {"phone": phone, "code": "000000"}
    if console_code(caplog, phone) == "000000":
        wrong["code"] = "111111"
    c.check("POST", sms_verify, http.post(sms_verify, json=wrong))  # 400
    right = {"phone": phone, "code": console_code(caplog, phone)}
    phone_user = c.check("POST", sms_verify, user.post(sms_verify, json=right)).json()
    assert phone_user["user"]["phone"] == phone  # added to Kim's account
    c.check("POST", sms_verify, http.post(sms_verify, json=right))  # 400: used

    # --- credits, catalog, orders
    balance = c.check("GET", "/v1/me/balance", user.get("/v1/me/balance")).json()
    assert balance["membership"] is None
    c.check("GET", "/v1/me/ledger", user.get("/v1/me/ledger"))
    c.check("GET", "/v1/me/ledger", user.get("/v1/me/ledger", params={"page_size": 0}))  # 400
    catalog = c.check("GET", "/v1/catalog", http.get("/v1/catalog")).json()
    c.check("GET", "/v1/catalog", user.get("/v1/catalog"))
    assert any(i["period_days"] is None for i in catalog["items"] if i["kind"] == "pack")
    r = c.check(
        "POST",
        "/v1/orders",
        user.post("/v1/orders", json={"item_id": "plan_monthly", "channel": "local"}),
    )
    order = r.json()
    c.check("POST", "/v1/orders", user.post("/v1/orders", json={"item_id": 7}))  # 422
    c.check(
        "POST",
        "/v1/orders",
        user.post("/v1/orders", json={"item_id": "no_such_item", "channel": "local"}),
    )
    c.check("GET", "/v1/orders", user.get("/v1/orders"))
    c.check("GET", "/v1/orders/{order_id}", user.get(f"/v1/orders/{order['id']}"))
    c.check("GET", "/v1/orders/{order_id}", user.get("/v1/orders/ord_missing"))  # 404
    c.check("POST", "/v1/orders/{order_id}/refresh", user.post(f"/v1/orders/{order['id']}/refresh"))
    paid = http.post(order["checkout"]["url"], data={"outcome": "paid"})
    assert paid.status_code == 303, paid.text
    balance = c.check("GET", "/v1/me/balance", user.get("/v1/me/balance")).json()
    assert balance["membership"] is not None
    c.check("GET", "/v1/orders/{order_id}", user.get(f"/v1/orders/{order['id']}"))
    c.check("GET", "/v1/me/ledger", user.get("/v1/me/ledger", params={"page_size": 1}))
    qr = f"/v1/orders/{order['id']}/qr.svg"
    c.check("GET", "/v1/orders/{order_id}/qr.svg", user.get(qr))  # 404: not a WeChat order
    c.check("GET", "/v1/orders/{order_id}/qr.svg", http.get(qr))  # 401

    # --- uploads, tasks, images
    data = jpeg()
    c.check(
        "POST",
        "/v1/uploads",
        user.post("/v1/uploads", json={"content_type": "image/jpeg", "size": 2**63}),
    )  # 422
    target = c.check(
        "POST",
        "/v1/uploads",
        user.post("/v1/uploads", json={"content_type": "image/jpeg", "size": len(data)}),
    ).json()
    assert target["headers"] is None and target["fields"]
    sent = httpx.post(
        target["url"], data=target["fields"], files={"file": ("p.jpg", data, "image/jpeg")}
    )
    c.check("POST", "/uploads", sent)
    c.check(
        "POST",
        "/uploads",
        http.post("/uploads", content=b"--x--", headers={"content-type": "multipart/form-data"}),
    )
    task = c.check(
        "POST",
        "/v1/tasks",
        user.post(
            "/v1/tasks", json={"type": "basic_clean", "input_upload_id": target["upload_id"]}
        ),
    ).json()
    assert task["error"] is None
    c.check("POST", "/v1/tasks", user.post("/v1/tasks", json={"type": "paint"}))  # 422
    wait_for_status(user, task["id"], {"succeeded"})
    done = c.check("GET", "/v1/tasks/{task_id}", user.get(f"/v1/tasks/{task['id']}")).json()
    assert done["images"]
    c.check("GET", "/v1/tasks/{task_id}", user.get("/v1/tasks/tsk_missing"))  # 404
    c.check(
        "POST", "/v1/tasks/{task_id}/cancel", user.post(f"/v1/tasks/{task['id']}/cancel")
    )  # 409: finished
    failing = user.post(
        "/v1/tasks",
        json={"type": "text_to_image", "params": {"prompt": "a cat", "sandbox_outcome": "fail"}},
    )
    assert failing.status_code == 201, failing.text
    failed = wait_for_status(user, failing.json()["id"], {"failed"})
    assert failed["error"]
    c.check("GET", "/v1/tasks/{task_id}", user.get(f"/v1/tasks/{failed['id']}"))
    archive = "/v1/tasks/{task_id}/archive"
    zipped = c.check("GET", archive, user.get(f"/v1/tasks/{task['id']}/archive"))
    with zipfile.ZipFile(io.BytesIO(zipped.content)) as z:
        assert z.testzip() is None
        assert [i.file_size for i in z.infolist()] == [i["size"] for i in done["images"]]
    c.check("GET", archive, user.get(f"/v1/tasks/{failed['id']}/archive"))  # 409
    c.check("GET", archive, user.get("/v1/tasks/tsk_missing/archive"))  # 404
    c.check("GET", archive, http.get(f"/v1/tasks/{task['id']}/archive"))  # 401
    c.check("GET", "/v1/tasks", user.get("/v1/tasks"))
    c.check("GET", "/v1/tasks", user.get("/v1/tasks", params={"status": "sleeping"}))  # 400
    c.check("GET", "/v1/tasks", user.get("/v1/tasks", params={"type": "paint"}))  # 400
    events = read_events(user, task["id"])
    assert events and events[-1]["data"]["terminal"] is True
    event_schema = {
        "components": contract.doc["components"],
        "$ref": "#/components/schemas/TaskEvent",
    }
    for event in events:
        Draft202012Validator(event_schema).validate(event["data"])
    c.seen.add(("GET", "/v1/tasks/{task_id}/events"))
    images = c.check("GET", "/v1/images", user.get("/v1/images")).json()
    c.check("GET", "/v1/images", user.get("/v1/images", params={"type": "nope"}))  # 400
    c.check("GET", "/v1/me/stats", user.get("/v1/me/stats"))
    url = images["items"][0]["url"]
    key = re.sub(r"^.*/files/", "", url.split("?")[0])
    c.check("GET", "/files/{key}", http.get(url))
    assert key
    c.check("GET", "/files/{key}", http.get(url.split("?")[0]))  # 403: unsigned

    # --- admin
    admin = _admin(stack, "root@example.com")
    c.check("GET", "/v1/admin/users", admin.get("/v1/admin/users", params={"page_size": 1}))
    c.check("GET", "/v1/admin/users", user.get("/v1/admin/users"))  # 403
    c.check("GET", "/v1/admin/users", http.get("/v1/admin/users"))  # 401
    c.check("GET", "/v1/admin/tasks", admin.get("/v1/admin/tasks"))
    c.check("GET", "/v1/admin/tasks", user.get("/v1/admin/tasks"))  # 403
    refund = f"/v1/admin/orders/{order['id']}/refund"
    c.check("POST", "/v1/admin/orders/{order_id}/refund", user.post(refund, json={}))  # 403
    c.check("POST", "/v1/admin/orders/{order_id}/refund", http.post(refund, json={}))  # 401
    c.check("POST", "/v1/admin/orders/{order_id}/refund", admin.post(refund, json={"reason": 1}))
    refunded = c.check(
        "POST", "/v1/admin/orders/{order_id}/refund", admin.post(refund, json={"reason": "test"})
    )
    assert refunded.json()["status"] == "refunded"
    c.check(
        "POST",
        "/v1/admin/orders/{order_id}/refund",
        admin.post("/v1/admin/orders/ord_missing/refund", json={}),
    )  # 404
    listing = c.check("GET", "/v1/admin/tasks", admin.get("/v1/admin/tasks")).json()
    assert {t["user_id"] for t in listing["items"]} == {user.id}
    users = "/v1/admin/users/{user_id}"
    page = f"/v1/admin/users/{user.id}"
    detail = c.check("GET", users, admin.get(page)).json()
    assert detail["profile"]["id"] == user.id
    assert [o["id"] for o in detail["recent_orders"]] == [order["id"]]
    assert {t["id"] for t in detail["recent_tasks"]} == {task["id"], failed["id"]}
    assert detail["grants"] == detail["balance"]["grants"]
    c.check("GET", users, user.get(page))  # 403
    c.check("GET", users, http.get(page))  # 401
    c.check("GET", users, admin.get("/v1/admin/users/usr_missing"))  # 404
    timeline = c.check(
        "GET", users + "/timeline", admin.get(f"{page}/timeline", params={"page_size": 100})
    ).json()
    kinds = {e["kind"] for e in timeline["items"]}
    assert {"grant", "hold", "capture", "release", "payment", "refund", "task"} <= kinds, kinds
    assert timeline["next_page_token"] == ""
    c.check(
        "GET", users + "/timeline", admin.get(f"{page}/timeline", params={"page_token": "x"})
    )  # 400
    c.check("GET", users + "/timeline", user.get(f"{page}/timeline"))  # 403
    c.check("GET", users + "/timeline", http.get(f"{page}/timeline"))  # 401
    c.check("GET", users + "/timeline", admin.get("/v1/admin/users/usr_missing/timeline"))  # 404
    credits = f"{page}/credits"
    adjust = {"amount": 7, "reason": "goodwill"}
    before = user.get("/v1/me/balance").json()["available"]
    adjusted = c.check(
        "POST",
        users + "/credits",
        admin.post(credits, json=adjust, headers={"Idempotency-Key": "adjust-1"}),
    ).json()
    assert adjusted["balance"]["available"] == before + 7
    assert user.get("/v1/me/balance").json()["available"] == before + 7
    c.check("POST", users + "/credits", admin.post(credits, json={"amount": 0, "reason": "x"}))
    c.check("POST", users + "/credits", user.post(credits, json=adjust))  # 403
    c.check("POST", users + "/credits", http.post(credits, json=adjust))  # 401
    c.check(
        "POST", users + "/credits", admin.post("/v1/admin/users/usr_missing/credits", json=adjust)
    )  # 404

    # --- content moderation (admin)
    moderation = "/v1/admin/moderation"
    listed = c.check("GET", moderation, admin.get(moderation, params={"page_size": 5})).json()
    assert len(listed["items"]) <= 5
    c.check("GET", moderation, admin.get(moderation, params={"verdict": "rejected"}))
    c.check("GET", moderation, admin.get(moderation, params={"verdict": "maybe"}))  # 400
    c.check("GET", moderation, user.get(moderation))  # 403
    c.check("GET", moderation, http.get(moderation))  # 401
    overturn = "/v1/admin/moderation/{decision_id}/overturn"
    c.check("POST", overturn, admin.post(f"{moderation}/mod_missing/overturn"))  # 404
    c.check("POST", overturn, admin.post(f"{moderation}/mod_missing/overturn", json={"x": 1}))
    c.check("POST", overturn, user.post(f"{moderation}/mod_missing/overturn"))  # 403
    c.check("POST", overturn, http.post(f"{moderation}/mod_missing/overturn"))  # 401

    # --- webhooks and operations
    c.check("POST", "/webhooks/{provider}", http.post("/webhooks/local", content=b"{}"))  # 400
    c.check("POST", "/webhooks/{provider}", http.post("/webhooks/nobody", content=b"{}"))  # 404
    c.check("GET", "/healthz", http.get("/healthz"))
    c.check("GET", "/readyz", http.get("/readyz"))
    c.check("GET", "/metrics", http.get("/metrics"))
    c.check("GET", "/v1/openapi.json", http.get("/v1/openapi.json"))
    c.check("GET", "/docs", http.get("/docs"))

    json_operations = {
        (method.upper(), path)
        for path, item in contract.doc["paths"].items()
        for method, op in item.items()
        if path.startswith("/v1/") or op.get("x-atelier-fuzz", True)
    }
    missing = json_operations - c.seen
    assert not missing, f"operations never checked against the document: {sorted(missing)}"
    problems = {(m, p, s) for (m, p, s) in c.statuses if s >= 400}
    assert len(problems) >= 20, problems


def test_nullable_fields_and_list_parameters_are_declared(api: Any) -> None:
    """Finding #5: fields that may be null say so; list operations declare their parameters."""
    doc = api.http.get("/v1/openapi.json").json()
    schemas = doc["components"]["schemas"]

    def nullable(schema: str, field: str) -> bool:
        prop = schemas[schema]["properties"][field]
        return {"type": "null"} in prop.get("anyOf", [])

    assert nullable("Profile", "phone") and nullable("Profile", "avatar_url")
    assert nullable("Balance", "membership") and nullable("Task", "error")
    assert not nullable("Profile", "id")
    lists = {
        "/v1/me/ledger": set(),
        "/v1/orders": set(),
        "/v1/tasks": {"status", "type"},
        "/v1/images": {"type"},
        "/v1/admin/users": {"query"},
        "/v1/admin/tasks": {"status", "type"},
        "/v1/admin/moderation": {"verdict"},
    }
    for path, filters in lists.items():
        params = {p["name"]: p for p in doc["paths"][path]["get"]["parameters"]}
        assert {"page_size", "page_token", *filters} <= set(params), path
        assert params["page_size"]["schema"]["maximum"] == 100
        assert params["page_size"]["schema"]["default"] == 20
    task_status = doc["paths"]["/v1/tasks"]["get"]["parameters"]
    status = next(p for p in task_status if p["name"] == "status")
    assert status["schema"]["enum"] == ["pending", "processing", "succeeded", "failed", "cancelled"]
    assert schemas["LedgerEntry"]["properties"]["kind"]["enum"] == [
        "grant",
        "hold",
        "capture",
        "release",
        "expire",
        "adjust",
    ]
    assert schemas["Order"]["properties"]["status"]["enum"] == [
        "pending",
        "paid",
        "failed",
        "expired",
        "refunded",
    ]
    assert schemas["CreateTaskRequest"]["properties"]["type"]["enum"] == [
        "text_to_image",
        "basic_clean",
        "model_pose12",
    ]
    assert schemas["CreateTaskRequest"]["additionalProperties"] is False
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    problem = doc["paths"]["/v1/tasks"]["post"]["responses"]["402"]["content"]
    assert problem["application/problem+json"]["schema"] == {"$ref": "#/components/schemas/Problem"}


def test_the_document_is_a_valid_openapi_3_1_document(api: Any) -> None:
    from openapi_spec_validator import validate

    doc = api.http.get("/v1/openapi.json").json()
    assert doc["openapi"] == "3.1.0"
    validate(doc)


def test_swagger_ui_is_served_offline(api: Any) -> None:
    page = api.http.get("/docs")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "http://" not in page.text and "https://" not in page.text
    for src in re.findall(r'(?:src|href)="([^"]+)"', page.text):
        assert src.startswith("/"), src  # nothing from a CDN
        asset = api.http.get(src)
        assert asset.status_code == 200 and len(asset.content) > 100, src
    bundle = api.http.get("/docs/assets/swagger-ui-bundle.js").text
    assert "isOAS31" in bundle  # a Swagger UI that renders OpenAPI 3.1
    assert "/v1/openapi.json" in api.http.get("/docs/init.js").text
    assert api.http.get("/docs/assets/../../settings.py").status_code == 404

"""The Tencent Cloud SMS adapter — the real ``tencentcloud-sdk-python-sms`` — against the local
endpoint of ``tests/support/tencent_sms_server.py``, which checks every TC3-HMAC-SHA256 signature.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from urllib.parse import urlsplit

import httpx
import pytest

from atelier_gateway.adapters.sms import TencentSms
from atelier_gateway.domain.errors import SmsNotDelivered, SmsRateLimited
from atelier_ports.problems import InvalidArgument
from tests.support import tencent_sms_server as tc
from tests.support.tencent_api import tc3_signature
from tests.support.tencent_sms_server import FakeTencentSms

PHONE = "+8613800138000"


@pytest.fixture
def server() -> Iterator[FakeTencentSms]:
    s = FakeTencentSms()
    yield s
    s.close()


def adapter(server: FakeTencentSms, **override: str) -> TencentSms:
    values: dict[str, str] = {
        "secret_id": tc.SECRET_ID,
        "secret_key": tc.SECRET_KEY,
        "sdk_app_id": tc.SDK_APP_ID,
        "sign_name": tc.SIGN_NAME,
        "template_id": tc.TEMPLATE_ID,
        "endpoint": server.url,
    }
    values.update(override)
    return TencentSms(
        secret_id=values["secret_id"],
        secret_key=values["secret_key"],
        sdk_app_id=values["sdk_app_id"],
        sign_name=values["sign_name"],
        template_id=values["template_id"],
        endpoint=values["endpoint"],
    )


def test_the_sdk_sends_the_code_and_its_minutes_with_a_valid_signature(
    server: FakeTencentSms,
) -> None:
    adapter(server).send_code(PHONE, "493817", 5)
    (sms,) = server.messages
    assert sms.phone == PHONE and sms.params == ("493817", "5")
    assert sms.template_id == tc.TEMPLATE_ID and sms.sign_name == tc.SIGN_NAME
    assert "493817" in sms.text and "5 minutes" in sms.text
    assert server.refusals == []


@pytest.mark.parametrize(
    ("override", "answer"),
    [
        ({"secret_key": "not-the-secret-key"}, "AuthFailure.SignatureFailure"),
        ({"secret_id": "AKIDunknown"}, "AuthFailure.SecretIdNotFound"),
        ({"template_id": "999"}, "FailedOperation.TemplateIncorrectOrUnapproved"),
        ({"sign_name": "Other"}, "FailedOperation.SignatureIncorrectOrUnapproved"),
    ],
)
def test_a_refused_call_is_a_clean_not_delivered_error(
    server: FakeTencentSms,
    override: dict[str, str],
    answer: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with pytest.raises(SmsNotDelivered):
        adapter(server, **override).send_code(PHONE, "493817", 5)
    assert server.refusals == [answer]
    assert server.messages == []
    logged = " ".join(str(getattr(r, "fields", "")) + r.getMessage() for r in caplog.records)
    assert answer in logged
    assert "493817" not in logged and tc.SECRET_KEY not in logged  # no code, no secret


def test_provider_limits_and_refused_numbers_are_told_apart(server: FakeTencentSms) -> None:
    server.refuse_next("LimitExceeded.PhoneNumberThirtySecondLimit")
    with pytest.raises(SmsRateLimited):
        adapter(server).send_code(PHONE, "111111", 5)
    server.refuse_next("InvalidParameterValue.IncorrectPhoneNumber")
    with pytest.raises(InvalidArgument) as info:
        adapter(server).send_code(PHONE, "111111", 5)
    assert info.value.field == "phone"
    assert server.messages == []


def test_an_unreachable_endpoint_is_not_delivered() -> None:
    closed = FakeTencentSms()
    url = closed.url
    closed.close()
    with pytest.raises(SmsNotDelivered):
        TencentSms(
            secret_id=tc.SECRET_ID,
            secret_key=tc.SECRET_KEY,
            sdk_app_id=tc.SDK_APP_ID,
            sign_name=tc.SIGN_NAME,
            template_id=tc.TEMPLATE_ID,
            endpoint=url,
            timeout_seconds=2,
        ).send_code(PHONE, "111111", 5)


# --- the server's own check (so a passing adapter test means the signature really was checked)


def _signed_post(
    server: FakeTencentSms, body: bytes, *, sent_body: bytes | None = None, age: int = 0
) -> dict[str, object]:
    timestamp = int(time.time()) - age
    date = datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d")
    host = urlsplit(server.url).netloc
    headers = {"content-type": "application/json", "host": host}
    signature = tc3_signature(
        tc.SECRET_KEY,
        method="POST",
        path="/",
        query="",
        headers=headers,
        signed_headers=["content-type", "host"],
        body=body,
        timestamp=timestamp,
        date=date,
        service="sms",
    )
    r = httpx.post(
        server.url + "/",
        content=sent_body if sent_body is not None else body,
        headers={
            "Content-Type": "application/json",
            "X-TC-Action": "SendSms",
            "X-TC-Version": "2021-01-11",
            "X-TC-Timestamp": str(timestamp),
            "X-TC-Region": "ap-guangzhou",
            "Authorization": (
                f"TC3-HMAC-SHA256 Credential={tc.SECRET_ID}/{date}/sms/tc3_request, "
                f"SignedHeaders=content-type;host, Signature={signature}"
            ),
        },
    )
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    return dict(r.json()["Response"])


def _body(phone: str = PHONE) -> bytes:
    return json.dumps(
        {
            "PhoneNumberSet": [phone],
            "SmsSdkAppId": tc.SDK_APP_ID,
            "SignName": tc.SIGN_NAME,
            "TemplateId": tc.TEMPLATE_ID,
            "TemplateParamSet": ["222222", "5"],
        }
    ).encode()


def test_the_server_accepts_a_request_signed_by_the_documented_algorithm(
    server: FakeTencentSms,
) -> None:
    answer = _signed_post(server, _body())
    assert answer["SendStatusSet"][0]["Code"] == "Ok"  # type: ignore[index]
    assert server.codes_sent_to(PHONE) == ["222222"]


def test_the_server_refuses_a_body_changed_after_signing(server: FakeTencentSms) -> None:
    changed = _body("+8613900139000")
    assert hashlib.sha256(changed).digest() != hashlib.sha256(_body()).digest()
    answer = _signed_post(server, _body(), sent_body=changed)
    assert answer["Error"]["Code"] == "AuthFailure.SignatureFailure"  # type: ignore[index]
    assert server.messages == []


def test_the_server_refuses_a_stale_signature(server: FakeTencentSms) -> None:
    answer = _signed_post(server, _body(), age=10 * 60)
    assert answer["Error"]["Code"] == "AuthFailure.SignatureExpire"  # type: ignore[index]
    assert server.messages == []

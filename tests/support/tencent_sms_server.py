"""A local Tencent Cloud API endpoint for SMS ``SendSms`` (API version 2021-01-11) that checks
every request's TC3-HMAC-SHA256 signature. Test infrastructure, not product code.

What it speaks (https://cloud.tencent.com/document/api/213/30654 and /382/55981):
- ``POST /`` with ``Content-Type: application/json``, ``X-TC-Action: SendSms``,
  ``X-TC-Version: 2021-01-11``, ``X-TC-Timestamp``, ``X-TC-Region`` and
  ``Authorization: TC3-HMAC-SHA256 Credential=<SecretId>/<date>/sms/tc3_request,
  SignedHeaders=content-type;host, Signature=<hex>``.
- The signature is recomputed here from the request as received, by the documented algorithm
  (written out in ``tencent_api.py``, independent of the SDK's code): the canonical request
  ``METHOD\\nURI\\nQUERY\\ncanonical headers\\nsigned headers\\nhex(sha256(body))``, the string
  to sign ``TC3-HMAC-SHA256\\n<timestamp>\\n<date>/sms/tc3_request\\nhex(sha256(canonical))``,
  and the key chain ``HMAC("TC3"+SecretKey, date) → HMAC(·, "sms") → HMAC(·, "tc3_request")``.
  A wrong signature, an unknown SecretId, a timestamp more than 5 minutes off or a scope that
  does not match is answered like Tencent Cloud: HTTP 200 with
  ``{"Response": {"Error": {"Code": "AuthFailure.…", "Message": …}, "RequestId": …}}``.
- Answers are ``Content-Type: application/json`` exactly: the SDK reads ``Error`` only then.
- A signed request is checked against the configured SDK app id, sign name and template (its
  parameter count), then each number gets a ``SendStatusSet`` entry (``Code: "Ok"`` or a refusal).

``messages`` holds every SMS "sent" (the template rendered with its parameters); ``refusals`` every
error code answered; ``refuse_next(code)`` makes the next number fail with ``code``.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tests.support.tencent_api import TencentApiError, answer, check_tc3
from tests.support.threaded_aiohttp import ThreadedServer

SECRET_ID = "AKIDatelierTestSecretId0000000000000"
SECRET_KEY = "atelier-tencent-test-secret-key-000"
SDK_APP_ID = "1400000000"
SIGN_NAME = "Atelier"
TEMPLATE_ID = "100001"
TEMPLATE = "Your Atelier log-in code is {1}. It is valid for {2} minutes."
SERVICE = "sms"
VERSION = "2021-01-11"


@dataclass(frozen=True)
class SentSms:
    phone: str
    sdk_app_id: str
    sign_name: str
    template_id: str
    params: tuple[str, ...]
    text: str


class FakeTencentSms:
    def __init__(self, secret_id: str = SECRET_ID, secret_key: str = SECRET_KEY) -> None:
        self.secret_id = secret_id
        self.secret_key = secret_key
        self.messages: list[SentSms] = []
        self.refusals: list[str] = []
        self.requests = 0
        self._next_refusals: list[str] = []
        self._lock = threading.Lock()
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self._server = ThreadedServer(app, access_log=False)

    @property
    def url(self) -> str:
        return self._server.url

    def gateway_settings(self) -> dict[str, str]:
        """The TENCENT_SMS_* settings of a gateway that sends its codes to this endpoint."""
        return {
            "TENCENT_SMS_SECRET_ID": SECRET_ID,
            "TENCENT_SMS_SECRET_KEY": SECRET_KEY,
            "TENCENT_SMS_SDK_APP_ID": SDK_APP_ID,
            "TENCENT_SMS_SIGN_NAME": SIGN_NAME,
            "TENCENT_SMS_TEMPLATE_ID": TEMPLATE_ID,
            "TENCENT_SMS_ENDPOINT": self.url,
        }

    def refuse_next(self, code: str) -> None:
        with self._lock:
            self._next_refusals.append(code)

    def codes_sent_to(self, phone: str) -> list[str]:
        with self._lock:
            return [m.params[0] for m in self.messages if m.phone == phone]

    def close(self) -> None:
        self._server.close()

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        with self._lock:
            self.requests += 1
        try:
            self._check_signature(request, body)
            params = json.loads(body)
            if request.headers.get("X-TC-Action") != "SendSms":
                raise TencentApiError("InvalidAction", "this server only speaks SendSms")
            if request.headers.get("X-TC-Version") != VERSION:
                raise TencentApiError("NoSuchVersion", "the version must be 2021-01-11")
            statuses = self._send(params)
        except TencentApiError as e:
            with self._lock:
                self.refusals.append(e.code)
            return answer({"Error": {"Code": e.code, "Message": e.message}})
        return answer({"SendStatusSet": statuses})

    def _check_signature(self, request: web.Request, body: bytes) -> None:
        check_tc3(
            request,
            body,
            secret_id=self.secret_id,
            secret_key=self.secret_key,
            services={SERVICE},
        )

    def _send(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        if params.get("SmsSdkAppId") != SDK_APP_ID:
            raise TencentApiError("InvalidParameterValue.SdkAppIdNotExist", "no such SdkAppId")
        if params.get("SignName") != SIGN_NAME:
            raise TencentApiError(
                "FailedOperation.SignatureIncorrectOrUnapproved", "the sign name is not approved"
            )
        if params.get("TemplateId") != TEMPLATE_ID:
            raise TencentApiError(
                "FailedOperation.TemplateIncorrectOrUnapproved", "the template is not approved"
            )
        values = [str(v) for v in params.get("TemplateParamSet") or []]
        if len(values) != TEMPLATE.count("{"):
            raise TencentApiError(
                "FailedOperation.TemplateParamSetNotMatchApprovedTemplate",
                "the parameters do not match the template",
            )
        text = TEMPLATE
        for i, value in enumerate(values, start=1):
            text = text.replace("{" + str(i) + "}", value)
        statuses = []
        for phone in params.get("PhoneNumberSet") or []:
            with self._lock:
                refusal = self._next_refusals.pop(0) if self._next_refusals else None
            if refusal is None and not re.fullmatch(r"\+[1-9][0-9]{6,14}", str(phone)):
                refusal = "InvalidParameterValue.IncorrectPhoneNumber"
            if refusal is None:
                with self._lock:
                    self.messages.append(
                        SentSms(
                            phone=str(phone),
                            sdk_app_id=SDK_APP_ID,
                            sign_name=SIGN_NAME,
                            template_id=TEMPLATE_ID,
                            params=tuple(values),
                            text=text,
                        )
                    )
            else:
                with self._lock:
                    self.refusals.append(refusal)
            statuses.append(
                {
                    "SerialNo": uuid.uuid4().hex,
                    "PhoneNumber": str(phone),
                    "Fee": 1 if refusal is None else 0,
                    "SessionContext": str(params.get("SessionContext") or ""),
                    "Code": refusal or "Ok",
                    "Message": "send success" if refusal is None else refusal,
                    "IsoCode": "CN" if str(phone).startswith("+86") else "",
                }
            )
        return statuses

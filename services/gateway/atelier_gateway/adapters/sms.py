"""SMS adapters of the ``Sms`` port, and the log-in codes they carry.

- ``ConsoleSms`` writes the code to the gateway's log instead of sending it: the local market's
  default, so phone log-in works with no account anywhere. It logs the code on purpose (that is
  what it is for); nothing else in the gateway ever logs a code.
- ``TencentSms`` sends it with Tencent Cloud SMS (``tencentcloud-sdk-python-sms``, API
  2021-01-11 ``SendSms``): template parameter 1 is the code, parameter 2 the minutes it is valid.
  The SDK signs each request with TC3-HMAC-SHA256; ``TENCENT_SMS_ENDPOINT`` may name a local
  server (``http://127.0.0.1:PORT``, plain HTTP), which is how the tests reach
  ``tests/support/tencent_sms_server.py``. Neither the secret key nor the code is logged.
"""

from __future__ import annotations

import logging
import secrets
from urllib.parse import urlsplit

from tencentcloud.common import credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.sms.v20210111 import models, sms_client

from atelier_gateway.domain.errors import SmsNotDelivered, SmsRateLimited
from atelier_gateway.domain.sms import CODE_DIGITS
from atelier_ports.problems import InvalidArgument

log = logging.getLogger("atelier.gateway.sms")


class SecretsOneTimeCodes:
    """The ``OneTimeCodes`` port: uniform ``CODE_DIGITS``-digit codes from ``secrets``."""

    def new_code(self) -> str:
        return f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"


def masked(phone: str) -> str:
    """``+8613800138000`` → ``+86138****8000``: enough for a person to tell numbers apart."""
    if len(phone) <= 8:
        return phone[:2] + "****"
    return phone[:-8] + "****" + phone[-4:]


class ConsoleSms:
    def send_code(self, phone: str, code: str, minutes_valid: int) -> None:
        log.warning(
            "SMS log-in code (SMS_PROVIDER=console: written here, not sent)",
            extra={"fields": {"phone": phone, "code": code, "minutes_valid": minutes_valid}},
        )


# Answers of Tencent Cloud SMS (per number in SendStatusSet, or the whole call's Error.Code).
_SENT = "Ok"
_REFUSED_NUMBER = frozenset(
    {
        "InvalidParameterValue.IncorrectPhoneNumber",
        "FailedOperation.PhoneNumberInBlacklist",
        "UnsupportedOperation.UnsupportedRegion",
        "UnsupportedOperation.ChineseMainlandTemplateToGlobalPhone",
        "UnsupportedOperation.InternationalTemplateToChineseMainlandPhone",
    }
)
_LIMITED_PREFIX = "LimitExceeded."


def split_endpoint(endpoint: str) -> tuple[str, str]:
    """``TENCENT_SMS_ENDPOINT`` → (scheme, host[:port]): a bare host is HTTPS."""
    if "://" not in endpoint:
        return "https", endpoint.strip().rstrip("/")
    parts = urlsplit(endpoint.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("TENCENT_SMS_ENDPOINT must be a host or an http(s) URL")
    return parts.scheme, parts.netloc


class TencentSms:
    def __init__(
        self,
        *,
        secret_id: str,
        secret_key: str,
        sdk_app_id: str,
        sign_name: str,
        template_id: str,
        region: str = "ap-guangzhou",
        endpoint: str = "sms.tencentcloudapi.com",
        timeout_seconds: int = 10,
    ) -> None:
        self._credential = credential.Credential(secret_id, secret_key)
        self._sdk_app_id = sdk_app_id
        self._sign_name = sign_name
        self._template_id = template_id
        self._region = region
        self._scheme, self._host = split_endpoint(endpoint)
        self._timeout = timeout_seconds

    def _client(self) -> sms_client.SmsClient:
        # One client per message: the SDK's client keeps a mutable request object, and SMS log-in
        # sends a few messages a minute at most.
        http = HttpProfile(protocol=self._scheme, endpoint=self._host, reqTimeout=self._timeout)
        profile = ClientProfile(httpProfile=http, language="en-US")
        return sms_client.SmsClient(self._credential, self._region, profile)

    def send_code(self, phone: str, code: str, minutes_valid: int) -> None:
        request = models.SendSmsRequest()
        request.PhoneNumberSet = [phone]
        request.SmsSdkAppId = self._sdk_app_id
        request.SignName = self._sign_name
        request.TemplateId = self._template_id
        request.TemplateParamSet = [code, str(minutes_valid)]
        try:
            response = self._client().SendSms(request)
        except TencentCloudSDKException as e:
            self._refused(str(e.get_code() or "unknown"), e.get_request_id())
        statuses = list(response.SendStatusSet or [])
        if not statuses:
            self._refused("NoSendStatus", response.RequestId)
        answer = str(statuses[0].Code or "")
        if answer != _SENT:
            self._refused(answer, response.RequestId)

    def _refused(self, answer: str, request_id: str | None) -> None:
        # The provider's code and request id only: its message may echo the request.
        log.warning(
            "Tencent Cloud SMS did not send the code",
            extra={"fields": {"answer": answer, "request_id": request_id}},
        )
        if answer in _REFUSED_NUMBER:
            raise InvalidArgument("the SMS provider refuses this phone number", field="phone")
        if answer.startswith(_LIMITED_PREFIX):
            raise SmsRateLimited(
                "the SMS provider's limit for this phone is reached", retry_after=60
            )
        raise SmsNotDelivered("the SMS provider did not send the code")

"""Phone + SMS log-in (F2): ``POST /v1/auth/sms/send`` and ``POST /v1/auth/sms/verify``.

Verify answers a session like ``/v1/auth/login``. Sent with a bearer token, it adds the verified
phone to that account instead (replacing its previous phone; 409 ``phone_taken`` if another
account has it) and answers a new session of that account.
"""

from __future__ import annotations

from aiohttp import web
from pydantic import ConfigDict, Field

from atelier_gateway.application.phone_login import CodeAnswer, CodeRequest
from atelier_gateway.domain.sms import CODE_DIGITS
from atelier_gateway.entrypoints.http.context import container, in_thread, optional_caller
from atelier_gateway.entrypoints.http.contract import (
    Operation,
    RequestModel,
    ResponseModel,
    operation,
    read_model,
    respond,
)
from atelier_gateway.entrypoints.http.middleware import client_address
from atelier_gateway.entrypoints.http.presenters.accounts import SessionResponse
from atelier_gateway.entrypoints.http.session_cookie import (
    COOKIE_HEADER,
    HEADER_DESCRIPTION,
    session_response,
)

routes = web.RouteTableDef()

Phone = Field(
    min_length=1,
    max_length=32,
    description="A phone number: E.164 (+8613800138000), or a mainland China number without +86",
)


class SmsSendRequest(RequestModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"phone": "+8613800138000"}]})

    phone: str = Phone


class SmsVerifyRequest(RequestModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"phone": "+8613800138000", "code": "123456"}]}
    )

    phone: str = Phone
    code: str = Field(pattern=f"^[0-9]{{{CODE_DIGITS}}}$", description="The code in the SMS")


class SmsCodeSent(ResponseModel):
    phone: str = Field(description="The number the code was sent to, in E.164")
    expires_in: int = Field(description="Seconds the code stays valid")
    resend_after: int = Field(description="Seconds before another code may be asked for")


@operation(
    routes,
    "POST",
    "/v1/auth/sms/send",
    Operation(
        "Send a log-in code by SMS",
        status=202,
        body=SmsSendRequest,
        response=SmsCodeSent,
        auth="none",
        description=(
            "A 6-digit code valid for 5 minutes. At most one code a minute and ten a day per "
            "phone, and a limit per client address (429 rate_limited with Retry-After)."
        ),
    ),
)
async def send_code(request: web.Request) -> web.Response:
    body = await read_model(request, SmsSendRequest)
    c = container(request)
    address = client_address(request, c.settings.gateway_trust_forwarded_for)
    phone = await in_thread(request, c.send_login_code, CodeRequest(body.phone, address))
    rules = c.send_login_code.rules
    sent = SmsCodeSent(
        phone=phone,
        expires_in=int(rules.code_ttl.total_seconds()),
        resend_after=int(rules.resend_interval.total_seconds()),
    )
    return respond(sent, status=202)


@operation(
    routes,
    "POST",
    "/v1/auth/sms/verify",
    Operation(
        "Log in with an SMS code (or, signed in, add the phone to your account)",
        body=SmsVerifyRequest,
        response=SessionResponse,
        auth="optional",
        errors=(409,),
        headers=(COOKIE_HEADER,),
        description=(
            "The first log-in with a phone creates its account (with the sign-up bonus). "
            "400 invalid_code for a wrong, expired or used code; 429 code_locked after 5 wrong "
            "tries (ask for a new code). With a bearer token the phone is added to that account "
            "(409 phone_taken if another account has it). "
        )
        + HEADER_DESCRIPTION,
    ),
)
async def verify_code(request: web.Request) -> web.Response:
    caller = await optional_caller(request)
    body = await read_model(request, SmsVerifyRequest)
    answer = CodeAnswer(
        phone=body.phone, code=body.code, user_id=caller.user_id if caller else None
    )
    session = await in_thread(request, container(request).log_in_with_code, answer)
    return session_response(request, session)

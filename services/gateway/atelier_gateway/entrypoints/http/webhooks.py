"""Provider webhooks: the raw body and headers go to the service whose adapter verifies them."""

from __future__ import annotations

from aiohttp import web
from atelier_common.grpc_client import RemoteCallError

from atelier_gateway.application.calls import Caller, Notification
from atelier_gateway.entrypoints.http.context import METRICS, container, request_id
from atelier_gateway.entrypoints.http.contract import Operation, ResponseModel, operation, respond
from atelier_gateway.entrypoints.http.jsonio import read_body
from atelier_gateway.entrypoints.http.problems import Problem

routes = web.RouteTableDef()

PAYMENT_PROVIDERS = frozenset({"local", "stripe", "wechatpay"})
GENERATION_PROVIDERS = frozenset({"replicate", "runninghub"})
# Hop-by-hop and proxy headers say nothing about the provider's signature.
_DROP = frozenset({"connection", "keep-alive", "transfer-encoding", "upgrade", "te", "trailer"})


def _unverified() -> Problem:
    return Problem(
        400, "invalid_signature", "Invalid signature", "the notification was not verified"
    )


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class WebhookReceipt(ResponseModel):
    received: bool
    applied: bool
    event_id: str | None


@operation(
    routes,
    "POST",
    "/webhooks/{provider}",
    Operation(
        "Provider notification (stripe, wechatpay, local, replicate, runninghub): the raw body "
        "and headers go to the service that verifies them; 400 invalid_signature otherwise",
        response=WebhookReceipt,
        request_media_type="application/octet-stream",
        auth="none",
        fuzz=False,
    ),
)
async def webhook(request: web.Request) -> web.Response:
    provider = request.match_info["provider"]
    if provider not in PAYMENT_PROVIDERS and provider not in GENERATION_PROVIDERS:
        raise Problem(404, "not_found", "Not found", "unknown webhook provider")
    body = await read_body(request)
    headers = [(k.lower(), v) for k, v in request.headers.items() if k.lower() not in _DROP]
    caller = Caller(user_id=None, role="user", request_id=request_id(request))
    metrics = request.app[METRICS]
    if not all(_utf8(k) and _utf8(v) for k, v in headers):
        # Header bytes that are not UTF-8 cannot travel in the gRPC message, and no provider
        # signs such a header: unverifiable.
        metrics.webhooks.labels(provider, "400").inc()
        raise _unverified()
    notification = Notification(provider=provider, headers=headers, body=body)
    c = container(request)
    try:
        if provider in PAYMENT_PROVIDERS:
            receipt = await c.billing.handle_payment_notification(caller, notification)
        else:
            receipt = await c.tasks.handle_provider_notification(caller, notification)
    except RemoteCallError as e:
        if e.status == "INVALID_ARGUMENT":
            metrics.webhooks.labels(provider, "400").inc()
            raise _unverified() from e
        metrics.webhooks.labels(provider, "error").inc()
        raise
    metrics.webhooks.labels(provider, "200").inc()
    return respond(
        WebhookReceipt(received=True, applied=receipt.applied, event_id=receipt.event_id or None)
    )

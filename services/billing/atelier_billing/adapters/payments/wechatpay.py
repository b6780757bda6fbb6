"""WeChat Pay API v3 (Native / QR pay) as a payment provider, through ``wechatpayv3``.

- The sync ``WeChatPay`` client in public-key mode only (``public_key`` + ``public_key_id``), so
  the constructor downloads no certificate. The SDK signs every request and verifies the
  signature of every 2xx response.
- The SDK's gateway URL is hard-coded; the one override we make is its documented private
  attribute ``_core._gate_way`` (VENDORS.md 2.6), when ``api_base`` is not WeChat's own.
  ``tests/billing/integration/test_wechatpay.py`` fails loudly if the attribute disappears.
- ``out_trade_no`` is our order number (``AT-YYMMDD-XXXXXX``: ≤ 32 characters of
  ``[0-9A-Za-z_-]``); our order id travels in ``attach`` and comes back in the notification.
- Notifications: ``Wechatpay-Signature-Type`` must be ``WECHATPAY2-SHA256-RSA2048``; our own
  5-minute timestamp window in both directions (the SDK checks none); then the SDK verifies the
  RSA-SHA256 signature over ``timestamp\\nnonce\\nbody\\n`` with the WeChat Pay public key and
  decrypts the AES-256-GCM resource with the APIv3 key. A verified event whose ``mchid`` (or, for
  a payment, ``appid``) is not ours carries ``details["payee_mismatch"]``; billing refuses and
  records it. Amount, currency and ``out_trade_no`` (as the event's ``order_number``) are checked
  against the order by billing (``PaymentSucceeded``, ``find_order``): a mismatch never pays.
- Close on expiry (``close_order``) and refunds (``refund`` and the ``REFUND.*`` notification,
  whose resource names the transaction and ``out_trade_no``).
- Amounts are integer fen; the channel charges CNY only.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import requests
from wechatpayv3 import WeChatPay, WeChatPayType

from atelier_billing.application.ports.payments import (
    Checkout,
    CheckoutRequest,
    OrderRef,
    PaymentEvent,
    PaymentEventKind,
    PaymentState,
    PaymentStatusReport,
    RefundReceipt,
    RefundState,
)
from atelier_ports.clock import Clock
from atelier_ports.errors import InvalidNotification, ProviderRejected, ProviderUnavailable

log = logging.getLogger("atelier.billing")

WECHATPAY_API_BASE = "https://api.mch.weixin.qq.com"
SIGNATURE_TYPE = "WECHATPAY2-SHA256-RSA2048"
_CHINA = timezone(timedelta(hours=8))
# trade_state → what it means for our order (REFUND: it was paid; the refund arrives on its own).
_STATES = {
    "SUCCESS": PaymentState.PAID,
    "REFUND": PaymentState.PAID,
    "NOTPAY": PaymentState.PENDING,
    "USERPAYING": PaymentState.PENDING,
    "CLOSED": PaymentState.EXPIRED,
    "REVOKED": PaymentState.EXPIRED,
    "PAYERROR": PaymentState.FAILED,
}


def _header(headers: Mapping[str, str], name: str) -> str:
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return ""


def _parse_time(value: Any, fallback: datetime) -> datetime:
    try:
        return datetime.fromisoformat(str(value)).astimezone(UTC)
    except ValueError:
        return fallback


class WeChatPayProvider:
    def __init__(
        self,
        *,
        mchid: str,
        appid: str,
        apiv3_key: str,
        merchant_serial_no: str,
        merchant_private_key: str,
        public_key_id: str,
        public_key: str,
        notify_url: str,
        clock: Clock,
        api_base: str = WECHATPAY_API_BASE,
        tolerance_seconds: int = 300,
        timeout: tuple[float, float] = (5, 15),
    ) -> None:
        if not all((mchid, appid, apiv3_key, merchant_serial_no, merchant_private_key)):
            raise ValueError("WeChat Pay needs its merchant id, app id, APIv3 key and merchant key")
        if not public_key or not public_key_id:
            raise ValueError("WeChat Pay runs in public-key mode: a public key and its id")
        if len(apiv3_key.encode()) != 32:
            raise ValueError("the WeChat Pay APIv3 key must be 32 bytes")
        self._mchid, self._appid = mchid, appid
        self._notify_url = notify_url
        self._clock = clock
        self._tolerance = tolerance_seconds
        self._client = WeChatPay(
            wechatpay_type=WeChatPayType.NATIVE,
            mchid=mchid,
            private_key=merchant_private_key,
            cert_serial_no=merchant_serial_no,
            appid=appid,
            apiv3_key=apiv3_key,
            notify_url=notify_url,
            cert_dir=None,
            logger=None,  # the SDK's debug log would carry request headers and bodies
            partner_mode=False,
            timeout=timeout,
            public_key=public_key,
            public_key_id=public_key_id,
        )
        base = api_base.rstrip("/")
        if base != WECHATPAY_API_BASE:
            set_gateway(self._client, base)

    @property
    def name(self) -> str:
        return "wechatpay"

    @property
    def currency(self) -> str:
        return "CNY"

    # --- calls to WeChat Pay ---
    def _call(self, what: str, fn: Any, **kwargs: Any) -> tuple[int, Any]:
        try:
            code, text = fn(**kwargs)
        except requests.RequestException as exc:
            raise ProviderUnavailable(f"WeChat Pay is unreachable ({what})") from exc
        except Exception as exc:  # the SDK raises bare Exception on an unverifiable answer
            log.error("wechatpay answer refused", extra={"fields": {"call": what}})
            raise ProviderUnavailable(
                f"WeChat Pay's answer could not be verified ({what})"
            ) from exc
        if code >= 500:
            raise ProviderUnavailable(f"WeChat Pay answered {code} ({what})")
        body: Any = {}
        if text:
            try:
                body = json.loads(text)
            except (ValueError, TypeError):
                body = {}
        if code >= 400 and not (what in ("query", "close") and code == 404):
            reason = body.get("code", "") if isinstance(body, dict) else ""
            raise ProviderRejected(f"WeChat Pay refused {what}: {code} {reason}".strip())
        return code, body

    def create_checkout(self, request: CheckoutRequest) -> Checkout:
        if request.currency.upper() != "CNY":
            raise ProviderRejected("WeChat Pay charges in CNY only")
        _, body = self._call(
            "create",
            self._client.pay,
            description=request.item_name[:127],
            out_trade_no=request.order_number,
            amount={"total": int(request.amount), "currency": "CNY"},
            time_expire=request.expires_at.astimezone(_CHINA).isoformat(timespec="seconds"),
            attach=request.order_id,
            notify_url=self._notify_url,
            pay_type=WeChatPayType.NATIVE,
        )
        code_url = body.get("code_url") if isinstance(body, dict) else None
        if not code_url:
            raise ProviderUnavailable("WeChat Pay answered no code_url")
        return Checkout(
            provider_reference=request.order_number,
            code_url=str(code_url),
            expires_at=request.expires_at,
        )

    def query_payment(self, order: OrderRef) -> PaymentStatusReport:
        code, body = self._call(
            "query", self._client.query, out_trade_no=order.provider_reference or order.order_number
        )
        if code == 404 or not isinstance(body, dict):
            return PaymentStatusReport(state=PaymentState.PENDING)
        if body.get("mchid") != self._mchid or body.get("appid") != self._appid:
            log.error(
                "wechatpay query names another merchant",
                extra={"fields": {"order": order.order_id}},
            )
            raise ProviderRejected("WeChat Pay's answer names another merchant or app")
        state = _STATES.get(str(body.get("trade_state", "")), PaymentState.PENDING)
        amount = body.get("amount") or {}
        return PaymentStatusReport(
            state=state,
            transaction_id=body.get("transaction_id") or None,
            amount=int(amount["total"]) if state is PaymentState.PAID else None,
            currency=str(amount.get("currency", "CNY")) if state is PaymentState.PAID else None,
        )

    def close_order(self, order: OrderRef) -> None:
        """Close an expired order at WeChat Pay so its QR code can no longer be paid."""
        self._call(
            "close", self._client.close, out_trade_no=order.provider_reference or order.order_number
        )

    def refund(self, order: OrderRef, refund_no: str, amount: int, reason: str) -> RefundReceipt:
        """Ask for a refund of ``amount`` fen (``/v3/refund/domestic/refunds``; ``refund_no`` is
        the ``out_refund_no``, so asking again never refunds twice). WeChat answers
        ``PROCESSING`` or ``SUCCESS``; the outcome also arrives as a signed ``REFUND.SUCCESS``
        notification."""
        _, body = self._call(
            "refund",
            self._client.refund,
            out_refund_no=refund_no[:64],
            amount={"refund": int(amount), "total": int(order.amount), "currency": "CNY"},
            out_trade_no=order.provider_reference or order.order_number,
            reason=reason[:80] or None,
            notify_url=self._notify_url,
        )
        if not isinstance(body, dict) or not body.get("refund_id"):
            raise ProviderUnavailable("WeChat Pay answered no refund_id")
        status = str(body.get("status", ""))
        if status == "CLOSED":
            raise ProviderRejected("WeChat Pay closed the refund")
        return RefundReceipt(
            refund_id=str(body["refund_id"]),
            state=RefundState.SUCCEEDED if status == "SUCCESS" else RefundState.PENDING,
        )

    # --- notifications ---
    def parse_notification(self, headers: Mapping[str, str], body: bytes) -> PaymentEvent:
        if _header(headers, "Wechatpay-Signature-Type") != SIGNATURE_TYPE:
            raise InvalidNotification("unexpected Wechatpay-Signature-Type")
        try:
            timestamp = int(_header(headers, "Wechatpay-Timestamp"))
        except ValueError as exc:
            raise InvalidNotification("missing or malformed Wechatpay-Timestamp") from exc
        now = self._clock.now()
        if abs(now.timestamp() - timestamp) > self._tolerance:
            raise InvalidNotification("timestamp outside the 5-minute window")
        canonical = {
            name: _header(headers, name)
            for name in (
                "Wechatpay-Timestamp",
                "Wechatpay-Nonce",
                "Wechatpay-Signature",
                "Wechatpay-Serial",
                "Wechatpay-Signature-Type",
            )
        }
        try:
            text = body.decode("utf-8")
            data = self._client.callback(canonical, text)
        except Exception as exc:  # malformed body, base64, key selection …
            raise InvalidNotification("the notification could not be verified") from exc
        if not isinstance(data, dict) or not isinstance(data.get("resource"), dict):
            raise InvalidNotification("bad signature or undecryptable resource")
        resource: dict[str, Any] = data["resource"]
        event_type = str(data.get("event_type", ""))
        # Verified, but for another merchant or app: billing refuses and records it.
        payee = [
            name
            for name, ours in (("mchid", self._mchid), ("appid", self._appid))
            if (name == "mchid" or event_type.startswith("TRANSACTION."))
            and resource.get(name) != ours
        ]
        if payee:
            log.error(
                "wechatpay notification for another merchant or app",
                extra={"fields": {"id": str(data.get("id", ""))[:64], "mismatch": payee}},
            )
        occurred = _parse_time(data.get("create_time"), now)
        try:
            if event_type.startswith("TRANSACTION."):
                event = self._transaction_event(resource, event_type, occurred)
            elif event_type.startswith("REFUND."):
                event = self._refund_event(resource, event_type, occurred)
            else:
                event = None
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidNotification("malformed notification resource") from exc
        if event is not None:
            if payee:
                event = replace(event, details={**event.details, "payee_mismatch": ",".join(payee)})
            return event
        if payee:
            raise InvalidNotification("the notification names another merchant")
        return PaymentEvent(
            provider=self.name,
            event_id=f"event:{str(data.get('id', ''))[:100]}",
            kind=PaymentEventKind.IGNORED,
            occurred_at=occurred,
        )

    def _transaction_event(
        self, resource: dict[str, Any], event_type: str, occurred: datetime
    ) -> PaymentEvent:
        transaction_id = str(resource["transaction_id"])
        state = str(resource.get("trade_state", ""))
        kind = (
            PaymentEventKind.PAYMENT_SUCCEEDED
            if event_type == "TRANSACTION.SUCCESS" and state == "SUCCESS"
            else PaymentEventKind.IGNORED
        )
        amount = resource["amount"]
        return PaymentEvent(
            provider=self.name,
            event_id=f"transaction:{transaction_id}:{state}",
            kind=kind,
            occurred_at=_parse_time(resource.get("success_time"), occurred),
            order_id=str(resource.get("attach") or "") or None,
            transaction_id=transaction_id,
            amount=int(amount["total"]),
            currency=str(amount.get("currency", "CNY")),
            details={"order_number": str(resource.get("out_trade_no", ""))},
        )

    def _refund_event(
        self, resource: dict[str, Any], event_type: str, occurred: datetime
    ) -> PaymentEvent:
        refund_id = str(resource["refund_id"])
        status = str(resource.get("refund_status", ""))
        kind = (
            PaymentEventKind.REFUNDED
            if event_type == "REFUND.SUCCESS" and status == "SUCCESS"
            else PaymentEventKind.IGNORED
        )
        amount = resource["amount"]
        return PaymentEvent(
            provider=self.name,
            event_id=f"refund:{refund_id}:{status}",
            kind=kind,
            occurred_at=_parse_time(resource.get("success_time"), occurred),
            transaction_id=str(resource["transaction_id"]),
            amount=int(amount["refund"]),
            currency="CNY",
            details={"order_number": str(resource.get("out_trade_no", ""))},
        )

    # --- customers and subscriptions: Native pay has neither ---
    def ensure_customer(self, user_id: str, email: str | None, name: str | None) -> str | None:
        return None

    def update_customer(self, customer_id: str, email: str | None, name: str | None) -> None:
        return None

    def cancel_subscription(self, subscription_id: str, at_period_end: bool) -> None:
        return None


def set_gateway(client: WeChatPay, base_url: str) -> None:
    """Point the SDK at another gateway: the one private attribute we touch (VENDORS.md 2.6).

    Refuses to start rather than silently calling the real gateway if a new SDK version moved it.
    """
    core = getattr(client, "_core", None)
    if core is None or not isinstance(getattr(core, "_gate_way", None), str):
        raise RuntimeError("wechatpayv3 no longer has _core._gate_way: check the pinned version")
    core._gate_way = base_url

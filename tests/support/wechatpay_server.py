"""A local WeChat Pay API v3 server speaking the wire protocol (VENDORS.md 2.1–2.7).

It checks every request's ``Authorization: WECHATPAY2-SHA256-RSA2048`` signature with the
merchant public key (and its 5-minute timestamp), signs every answer and notification with a test
platform key, and encrypts notifications with AES-256-GCM under the APIv3 key. Endpoints: Native
create, query by ``out_trade_no``, close (400 ORDERPAID once paid), refund
(``/v3/refund/domestic/refunds``, idempotent per ``out_refund_no``). Control calls (a customer or
WeChat acting): ``pay()`` / ``refund_notification()`` change a transaction or refund and build its
signed, encrypted notification; ``pay_and_notify()`` / ``refund_and_notify()`` also POST it to the
``notify_url`` the merchant gave; ``deliver()`` POSTs any notification anywhere. Keys are
generated at test time, never stored.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

PUBLIC_KEY_ID = "PUB_KEY_ID_TEST"
MERCHANT_SERIAL = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1"


def _pem_private(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def _pem_public(key: rsa.RSAPrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


@dataclass
class WeChatKeys:
    """The merchant and platform key pairs and the APIv3 key of one test."""

    mchid: str = "1230000109"
    appid: str = "wxtestappid00001"
    apiv3_key: str = field(default_factory=lambda: secrets.token_hex(16))
    merchant: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )
    platform: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )

    @property
    def merchant_private_pem(self) -> str:
        return _pem_private(self.merchant)

    @property
    def platform_public_pem(self) -> str:
        return _pem_public(self.platform)


def sign(key: rsa.RSAPrivateKey, message: str) -> str:
    raw = key.sign(message.encode(), padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(raw).decode()


def encrypt(apiv3_key: str, plaintext: bytes, aad: str = "transaction") -> dict[str, str]:
    nonce = secrets.token_hex(6)  # 12 characters
    ct = AESGCM(apiv3_key.encode()).encrypt(nonce.encode(), plaintext, aad.encode())
    return {
        "algorithm": "AEAD_AES_256_GCM",
        "ciphertext": base64.b64encode(ct).decode(),
        "associated_data": aad,
        "nonce": nonce,
    }


@dataclass(frozen=True)
class Notification:
    headers: dict[str, str]
    body: bytes


_AUTH = re.compile(r'(\w+)="([^"]*)"')


class WeChatPayServer:
    def __init__(self, keys: WeChatKeys | None = None) -> None:
        self.keys = keys or WeChatKeys()
        self.transactions: dict[str, dict[str, Any]] = {}
        self.refunds: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str]] = []
        self.refused: list[str] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> WeChatPayServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def billing_settings(self, directory: Path) -> dict[str, str]:
        """The WECHATPAY_* settings of a billing service that talks to this server, its key
        files written into ``directory``."""
        merchant, platform = directory / "merchant.pem", directory / "platform.pub.pem"
        merchant.write_text(self.keys.merchant_private_pem)
        platform.write_text(self.keys.platform_public_pem)
        return {
            "WECHATPAY_MCHID": self.keys.mchid,
            "WECHATPAY_APPID": self.keys.appid,
            "WECHATPAY_APIV3_KEY": self.keys.apiv3_key,
            "WECHATPAY_MERCHANT_SERIAL_NO": MERCHANT_SERIAL,
            "WECHATPAY_MERCHANT_PRIVATE_KEY_FILE": str(merchant),
            "WECHATPAY_PUBLIC_KEY_ID": PUBLIC_KEY_ID,
            "WECHATPAY_PUBLIC_KEY_FILE": str(platform),
            "WECHATPAY_API_BASE": self.url,
        }

    # --- signing ---
    def signed_headers(self, body: bytes, *, at: int | None = None) -> dict[str, str]:
        ts, nonce = str(at if at is not None else int(time.time())), secrets.token_hex(16)
        return {
            "Wechatpay-Timestamp": ts,
            "Wechatpay-Nonce": nonce,
            "Wechatpay-Signature": sign(self.keys.platform, f"{ts}\n{nonce}\n{body.decode()}\n"),
            "Wechatpay-Serial": PUBLIC_KEY_ID,
            "Wechatpay-Signature-Type": "WECHATPAY2-SHA256-RSA2048",
        }

    def _check_authorization(self, method: str, target: str, header: str, body: bytes) -> bool:
        scheme, _, params = header.partition(" ")
        if scheme != "WECHATPAY2-SHA256-RSA2048":
            return False
        fields = dict(_AUTH.findall(params))
        if fields.get("mchid") != self.keys.mchid or fields.get("serial_no") != MERCHANT_SERIAL:
            return False
        try:
            if abs(time.time() - int(fields["timestamp"])) > 300:
                return False
            message = f"{method}\n{target}\n{fields['timestamp']}\n{fields['nonce_str']}\n"
            message += body.decode() + "\n"
            self.keys.merchant.public_key().verify(
                base64.b64decode(fields["signature"]),
                message.encode(),
                padding.PKCS1v15(),
                hashes.SHA256(),
            )
        except Exception:
            return False
        return True

    # --- control calls ---
    def _notification(
        self, event_type: str, resource: dict[str, Any], original_type: str, *, at: int | None
    ) -> Notification:
        plaintext = json.dumps(resource).encode()
        envelope = {
            "id": f"EV-{secrets.token_hex(8)}",
            "create_time": datetime.now(UTC).isoformat(timespec="seconds"),
            "resource_type": "encrypt-resource",
            "event_type": event_type,
            "summary": "ok",
            "resource": {
                "original_type": original_type,
                **encrypt(self.keys.apiv3_key, plaintext, original_type),
            },
        }
        body = json.dumps(envelope).encode()
        return Notification(self.signed_headers(body, at=at), body)

    def pay(self, out_trade_no: str, /, *, at: int | None = None, **override: Any) -> Notification:
        """Mark the transaction paid; return its TRANSACTION.SUCCESS notification.

        ``override`` changes fields of the notified resource only (mismatch tests)."""
        with self._lock:
            tx = self.transactions[out_trade_no]
            if tx["trade_state"] == "NOTPAY":
                tx["trade_state"] = "SUCCESS"
                tx["success_time"] = datetime.now(UTC).isoformat(timespec="seconds")
            resource = {**tx, **override}
        return self._notification("TRANSACTION.SUCCESS", resource, "transaction", at=at)

    def refund_notification(self, out_refund_no: str) -> Notification:
        with self._lock:
            refund = self.refunds[out_refund_no]
            refund["status"] = "SUCCESS"
            resource = {
                "mchid": self.keys.mchid,
                "out_trade_no": refund["out_trade_no"],
                "transaction_id": refund["transaction_id"],
                "out_refund_no": out_refund_no,
                "refund_id": refund["refund_id"],
                "refund_status": "SUCCESS",
                "success_time": datetime.now(UTC).isoformat(timespec="seconds"),
                "amount": refund["amount"],
            }
        return self._notification("REFUND.SUCCESS", resource, "refund", at=None)

    def pay_and_notify(self, out_trade_no: str) -> int:
        """The control call: the customer pays, and WeChat POSTs the signed notification to the
        order's ``notify_url``; returns the HTTP status the merchant answered."""
        notification = self.pay(out_trade_no)
        return self.deliver(notification, str(self.transactions[out_trade_no]["notify_url"]))

    def refund_and_notify(self, out_refund_no: str) -> int:
        """The refund completes, and WeChat POSTs its REFUND.SUCCESS notification."""
        notification = self.refund_notification(out_refund_no)
        return self.deliver(notification, str(self.refunds[out_refund_no]["_notify_url"]))

    @staticmethod
    def deliver(notification: Notification, url: str) -> int:
        request = urllib.request.Request(
            url,
            data=notification.body,
            headers={**notification.headers, "Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)

    # --- HTTP ---
    def _handle(self, method: str, target: str, auth: str, body: bytes) -> tuple[int, Any]:
        self.requests.append((method, target))
        if not self._check_authorization(method, target, auth, body):
            self.refused.append(target)
            return 401, {"code": "SIGN_ERROR", "message": "签名错误，请检查后再试"}
        path = urlsplit(target).path
        data = json.loads(body) if body else {}
        with self._lock:
            if method == "POST" and path == "/v3/pay/transactions/native":
                no = data["out_trade_no"]
                if no in self.transactions:
                    return 200, {"code_url": self.transactions[no]["_code_url"]}
                self.transactions[no] = {
                    "appid": data["appid"],
                    "mchid": data["mchid"],
                    "out_trade_no": no,
                    "transaction_id": f"42000{secrets.randbelow(10**22):022d}",
                    "trade_type": "NATIVE",
                    "trade_state": "NOTPAY",
                    "trade_state_desc": "",
                    "attach": data.get("attach", ""),
                    "amount": {
                        "total": data["amount"]["total"],
                        "currency": data["amount"].get("currency", "CNY"),
                    },
                    "time_expire": data.get("time_expire"),
                    "notify_url": data.get("notify_url"),
                    "_code_url": f"weixin://wxpay/bizpayurl?pr={secrets.token_urlsafe(6)}",
                }
                return 200, {"code_url": self.transactions[no]["_code_url"]}
            m = re.fullmatch(r"/v3/pay/transactions/out-trade-no/([^/]+)(/close)?", path)
            if m:
                tx = self.transactions.get(m.group(1))
                if tx is None:
                    return 404, {"code": "ORDER_NOT_EXIST", "message": "订单不存在"}
                if m.group(2):
                    if tx["trade_state"] in ("SUCCESS", "REFUND"):
                        return 400, {"code": "ORDERPAID", "message": "订单已支付"}
                    tx["trade_state"] = "CLOSED"
                    return 204, None
                answer = {k: v for k, v in tx.items() if not k.startswith("_")}
                if tx["trade_state"] not in ("SUCCESS", "REFUND"):
                    answer.pop("transaction_id")
                return 200, answer
            if method == "POST" and path == "/v3/refund/domestic/refunds":
                tx = self.transactions.get(data.get("out_trade_no", ""))
                if tx is None or tx["trade_state"] not in ("SUCCESS", "REFUND"):
                    return 400, {"code": "INVALID_REQUEST", "message": "not paid"}
                no = data["out_refund_no"]
                if no not in self.refunds:
                    tx["trade_state"] = "REFUND"
                    self.refunds[no] = {
                        "refund_id": f"50000{secrets.randbelow(10**22):022d}",
                        "out_refund_no": no,
                        "transaction_id": tx["transaction_id"],
                        "out_trade_no": tx["out_trade_no"],
                        "status": "PROCESSING",
                        "create_time": datetime.now(UTC).isoformat(timespec="seconds"),
                        "_notify_url": data.get("notify_url"),
                        "amount": {
                            "total": data["amount"]["total"],
                            "refund": data["amount"]["refund"],
                            "payer_total": data["amount"]["total"],
                            "payer_refund": data["amount"]["refund"],
                            "currency": "CNY",
                        },
                    }
                return 200, {k: v for k, v in self.refunds[no].items() if not k.startswith("_")}
        return 404, {"code": "NOT_FOUND", "message": "no such endpoint"}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                status, answer = server._handle(
                    self.command, self.path, self.headers.get("Authorization", ""), body
                )
                raw = b"" if answer is None else json.dumps(answer).encode()
                self.send_response(status)
                if status < 300:
                    for name, value in server.signed_headers(raw).items():
                        self.send_header(name, value)
                if raw:
                    self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            do_GET = _serve
            do_POST = _serve

        return Handler

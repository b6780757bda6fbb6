"""A local server that speaks Replicate's HTTP API for the calls Atelier makes, serves output
files like replicate.delivery, and sends webhooks signed like Replicate (standard-webhooks).
Test infrastructure, not product code.

What it speaks: ``Authorization: Bearer <token>`` (or the older ``Token <token>``);
``POST /v1/predictions`` (``version``), ``POST /v1/models/{owner}/{name}/predictions``,
``GET /v1/predictions/{id}``, ``POST /v1/predictions/{id}/cancel``; prediction objects with the
fields the SDK requires (``id``, ``model``, ``version``, ``status`` …); RFC 7807 problem bodies for
errors. ``GET /files/{name}`` serves outputs. Test controls are Python methods (``complete``,
``fail``, ``send``), standing in for the model finishing on Replicate's side.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import itertools
import json
import threading
import time
import urllib.error
import urllib.request
from typing import Any

from aiohttp import web
from PIL import Image

from tests.support.threaded_aiohttp import ThreadedServer

API_TOKEN = "r8_test_atelier"
WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"atelier-replicate-test-secret-32b").decode()
PAYLOAD = web.RequestKey("payload", dict[str, Any])


def sign(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    """The standard-webhooks signature: base64(HMAC-SHA256(key, "{id}.{ts}.{body}"))."""
    key = base64.b64decode(secret.split("_", 1)[1])
    content = f"{webhook_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()


def png(colour: tuple[int, int, int] = (200, 40, 90), side: int = 48) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (side, side), colour).save(out, format="PNG")
    return out.getvalue()


def _problem(status: int, title: str, detail: str) -> web.Response:
    return web.json_response(
        {"type": "about:blank", "title": title, "status": status, "detail": detail},
        status=status,
        content_type="application/problem+json",
    )


class FakeReplicate:
    def __init__(self, token: str = API_TOKEN, secret: str = WEBHOOK_SECRET) -> None:
        self.token = token
        self.secret = secret
        self.predictions: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str, dict[str, Any]]] = []
        self.files: dict[str, tuple[bytes, str]] = {}
        self.webhook_statuses: list[int] = []
        self._seq = itertools.count(1)
        self._lock = threading.Lock()
        app = web.Application(middlewares=[self._auth])
        app.router.add_post("/v1/predictions", self._create)
        app.router.add_post("/v1/models/{owner}/{name}/predictions", self._create)
        app.router.add_get("/v1/predictions/{id}", self._get)
        app.router.add_post("/v1/predictions/{id}/cancel", self._cancel)
        app.router.add_get("/files/{name}", self._file)
        self._server = ThreadedServer(app)
        self.url = self._server.url

    def close(self) -> None:
        self._server.close()

    # ---- protocol ---------------------------------------------------------------------------

    @web.middleware
    async def _auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path.startswith("/files/"):
            response: web.StreamResponse = await handler(request)
            return response  # output files are public, like replicate.delivery
        auth = request.headers.get("Authorization", "")
        if auth not in (f"Bearer {self.token}", f"Token {self.token}"):
            return _problem(401, "Unauthenticated", "You did not pass a valid authentication token")
        body = await request.read()
        try:
            payload = json.loads(body) if body else {}
        except ValueError:
            return _problem(400, "Bad request", "the body is not JSON")
        self.requests.append((request.method, request.path, payload))
        request[PAYLOAD] = payload
        answer: web.StreamResponse = await handler(request)
        return answer

    async def _create(self, request: web.Request) -> web.Response:
        p = request[PAYLOAD]
        owner, name = request.match_info.get("owner"), request.match_info.get("name")
        if owner and name:
            model, version = f"{owner}/{name}", "hidden"
        elif p.get("version"):
            model, version = "atelier-test/pinned", str(p["version"])
        else:
            return _problem(422, "Invalid input", "version is required")
        if not isinstance(p.get("input"), dict):
            return _problem(422, "Invalid input", "input is required")
        pid = f"pred{next(self._seq):06d}atelier"
        prediction = {
            "id": pid,
            "model": model,
            "version": version,
            "status": "starting",
            "input": p["input"],
            "output": None,
            "error": None,
            "logs": "",
            "metrics": {},
            "created_at": _now(),
            "started_at": None,
            "completed_at": None,
            "urls": {
                "get": f"{self.url}/v1/predictions/{pid}",
                "cancel": f"{self.url}/v1/predictions/{pid}/cancel",
            },
            "webhook": p.get("webhook"),
            "webhook_events_filter": p.get("webhook_events_filter"),
        }
        with self._lock:
            self.predictions[pid] = prediction
        return web.json_response(_public(prediction), status=201)

    async def _get(self, request: web.Request) -> web.Response:
        prediction = self.predictions.get(request.match_info["id"])
        if prediction is None:
            return _problem(404, "Not found", "The requested resource could not be found")
        return web.json_response(_public(prediction))

    async def _cancel(self, request: web.Request) -> web.Response:
        prediction = self.predictions.get(request.match_info["id"])
        if prediction is None:
            return _problem(404, "Not found", "The requested resource could not be found")
        if prediction["status"] in ("starting", "processing"):
            prediction.update(status="canceled", completed_at=_now())
        return web.json_response(_public(prediction))

    async def _file(self, request: web.Request) -> web.Response:
        found = self.files.get(request.match_info["name"])
        if found is None:
            return web.Response(status=404)
        return web.Response(body=found[0], content_type=found[1])

    # ---- test controls ------------------------------------------------------------------------

    def add_file(self, name: str, data: bytes, content_type: str = "image/png") -> str:
        self.files[name] = (data, content_type)
        return f"{self.url}/files/{name}"

    def complete(
        self,
        prediction_id: str,
        outputs: list[str] | None = None,
        *,
        webhook: bool = True,
    ) -> dict[str, Any]:
        """The model finishes: outputs (default: one PNG served here); sends the webhook."""
        if outputs is None:
            outputs = [self.add_file(f"{prediction_id}-0.png", png())]
        return self._finish(prediction_id, webhook, status="succeeded", output=outputs)

    def fail(self, prediction_id: str, error: str = "CUDA out of memory") -> dict[str, Any]:
        return self._finish(prediction_id, True, status="failed", error=error)

    def cancel_at_vendor(self, prediction_id: str) -> dict[str, Any]:
        return self._finish(prediction_id, True, status="canceled")

    def _finish(self, prediction_id: str, webhook: bool, **changes: Any) -> dict[str, Any]:
        prediction = self.predictions[prediction_id]
        prediction.update(changes, completed_at=_now(), started_at=prediction["created_at"])
        if webhook and prediction.get("webhook"):
            self.webhook_statuses.append(self.send(prediction_id))
        return _public(prediction)

    def notification(
        self,
        prediction_id: str,
        *,
        secret: str | None = None,
        timestamp: int | None = None,
        webhook_id: str | None = None,
    ) -> tuple[dict[str, str], bytes]:
        """The signed webhook (headers, raw body) Replicate would send for this prediction."""
        body = json.dumps(_public(self.predictions[prediction_id])).encode()
        ts = int(time.time()) if timestamp is None else timestamp
        wid = webhook_id or f"msg_{prediction_id}_{next(self._seq)}"
        headers = {
            "Content-Type": "application/json",
            "webhook-id": wid,
            "webhook-timestamp": str(ts),
            "webhook-signature": sign(secret or self.secret, wid, ts, body),
        }
        return headers, body

    def send(
        self, prediction_id: str, *, secret: str | None = None, timestamp: int | None = None
    ) -> int:
        """POST the prediction to its webhook URL, signed; returns the HTTP status."""
        url = self.predictions[prediction_id]["webhook"]
        headers, body = self.notification(prediction_id, secret=secret, timestamp=timestamp)
        request = urllib.request.Request(url, data=body, method="POST", headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=15) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)
        except urllib.error.URLError:
            return 0  # nobody listening: Replicate would retry, then give up


def _public(prediction: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in prediction.items() if k not in ("webhook", "webhook_events_filter")}


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())

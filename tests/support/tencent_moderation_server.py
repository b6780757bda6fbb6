"""A local Tencent Cloud API endpoint for content moderation — TMS ``TextModeration`` and IMS
``ImageModeration``, API version 2020-12-29 — that checks every request's TC3-HMAC-SHA256
signature (``tencent_api.py``). Test infrastructure, not product code.

What it speaks (https://cloud.tencent.com/document/api/1124/51860 and /1125/53273):
- ``POST /`` with ``X-TC-Action``, ``X-TC-Version: 2020-12-29``, ``X-TC-Timestamp``,
  ``X-TC-Region`` and a TC3 ``Authorization`` whose credential scope names the service: one port
  answers both, told apart by the signed scope (``…/tms/tc3_request`` → TextModeration,
  ``…/ims/tc3_request`` → ImageModeration; any other pairing is ``InvalidAction``).
- Errors are answered like Tencent Cloud: HTTP 200, ``{"Response": {"Error": {"Code",
  "Message"}, "RequestId"}}`` — AuthFailure.* for a bad signature or key.
- TextModeration: ``Content`` is base64 of UTF-8, at most 10,000 characters
  (``InvalidParameterValue.ErrTextContentLen`` beyond). Answers ``Suggestion``, ``Label``,
  ``SubLabel``, ``Score`` (0–100), ``Keywords`` and ``DetailResults[]``.
- ImageModeration: ``FileContent`` (base64, at most 10 MB of base64:
  ``InvalidParameterValue.InvalidFileContentSize`` beyond) or ``FileUrl`` (fetched here over
  HTTP; a failed fetch is ``ResourceUnavailable.ImageDownloadError``); bytes Pillow cannot read
  are ``InvalidParameter.InvalidImageContent``. Answers ``Suggestion``, ``Label``, ``SubLabel``,
  ``Score``, ``LabelResults[]`` (with ``Details[]``), ``FileMD5``.

How it decides (deterministic, what the tests control):
- text: a case-insensitive substring match against ``text_rules`` (word → label, sub-label,
  score, suggestion). By default "porn"/"色情" → Porn 95 Block, "idiot"/"傻瓜" → Abuse 92 Block,
  "borderline"/"擦边" → Porn ``review_score`` (72) Review, "logo" → a DetailResults entry Ad 99
  that the policy passes (Suggestion Pass); anything else → Normal, Pass.
- images: an image whose SHA-256 was passed to ``block_image`` → Porn 99 Block; else by its
  average colour (so it survives re-encoding): close to pure magenta (255, 0, 255) → Porn 97
  Block, close to pure yellow (255, 255, 0) → Porn ``review_score`` Review; else Normal, Pass —
  and close to pure cyan (0, 255, 255) adds an ``ObjectResults`` QR code, Ad 99, Suggestion Pass.
  ``magenta_png()`` / ``yellow_png()`` / ``product_png()`` make such images.

Controls: ``go_down("InternalError" | "http_503")`` / ``throttle()`` (``RequestLimitExceeded``)
until ``come_back()``; ``fail_next(code)`` answers the next request with that error; ``calls``
records every request (service, region, what was sent, the answer's code or suggestion, its
RequestId).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import aiohttp
from aiohttp import web
from PIL import Image, ImageStat

from tests.support.tencent_api import (
    TencentApiError,
    answer,
    check_tc3,
    error_answer,
    new_request_id,
)
from tests.support.threaded_aiohttp import ThreadedServer

SECRET_ID = "AKIDatelierModerationTestId000000000"
SECRET_KEY = "atelier-tencent-moderation-test-key"
REGION = "ap-guangzhou"
VERSION = "2020-12-29"
ACTIONS = {"tms": "TextModeration", "ims": "ImageModeration"}
MAX_TEXT_CHARS = 10_000
MAX_FILE_CONTENT_BASE64 = 10 * 1024 * 1024


@dataclass(frozen=True)
class TextRule:
    label: str
    sub_label: str
    score: int
    suggestion: str  # Block | Review | Pass (a hit the policy allows)


REVIEW_SCORE = 72


def default_text_rules(review_score: int = REVIEW_SCORE) -> dict[str, TextRule]:
    return {
        "porn": TextRule("Porn", "SexualBehavior", 95, "Block"),
        "色情": TextRule("Porn", "SexualBehavior", 95, "Block"),
        "idiot": TextRule("Abuse", "Insult", 92, "Block"),
        "傻瓜": TextRule("Abuse", "Insult", 92, "Block"),
        "borderline": TextRule("Porn", "Sexy", review_score, "Review"),
        "擦边": TextRule("Porn", "Sexy", review_score, "Review"),
        "logo": TextRule("Ad", "Brand", 99, "Pass"),
    }


@dataclass(frozen=True)
class ModerationCall:
    service: str  # tms | ims
    action: str
    region: str
    request_id: str
    outcome: str  # the Suggestion answered, or the error code
    text: str | None = None  # TextModeration: the decoded Content
    biz_type: str | None = None
    file_url: str | None = None  # ImageModeration by URL
    file_content_chars: int | None = None  # ImageModeration by content: its base64 length
    image_sha256: str | None = None  # the image as received (content or fetched)
    image_size: tuple[int, int] | None = None


def _png(colour: tuple[int, int, int], size: tuple[int, int] = (96, 96)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, "PNG")
    return out.getvalue()


def magenta_png() -> bytes:
    """An image the fake blocks (Porn, 97)."""
    return _png((255, 0, 255))


def yellow_png() -> bytes:
    """An image the fake sends to review (Porn, ``review_score``)."""
    return _png((255, 255, 0))


def product_png() -> bytes:
    """An image the fake passes: a grey product on white."""
    image = Image.new("RGB", (96, 96), (255, 255, 255))
    image.paste((90, 100, 110), (24, 24, 72, 72))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def _near(colour: tuple[float, ...], target: tuple[int, int, int], tolerance: float = 24) -> bool:
    return all(abs(c - t) <= tolerance for c, t in zip(colour, target, strict=True))


@dataclass
class _State:
    down: Literal["InternalError", "http_503"] | None = None
    throttled: bool = False
    next_errors: list[str] = field(default_factory=list)
    blocked_images: set[str] = field(default_factory=set)


class FakeTencentModeration:
    def __init__(
        self,
        *,
        secret_id: str = SECRET_ID,
        secret_key: str = SECRET_KEY,
        text_rules: Mapping[str, TextRule] | None = None,
        review_score: int = REVIEW_SCORE,
    ) -> None:
        self.secret_id = secret_id
        self.secret_key = secret_key
        self.review_score = review_score
        self.text_rules = dict(text_rules or default_text_rules(review_score))
        self.calls: list[ModerationCall] = []
        self._state = _State()
        self._lock = threading.Lock()
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/{tail:.*}", self._handle)
        self._server = ThreadedServer(app, access_log=False)

    # -- test controls ----------------------------------------------------------------------

    @property
    def url(self) -> str:
        return self._server.url

    def tasks_settings(self) -> dict[str, str]:
        """The settings of a tasks service that moderates with this endpoint."""
        return {
            "MODERATION_PROVIDER": "tencent",
            "TENCENT_MODERATION_SECRET_ID": self.secret_id,
            "TENCENT_MODERATION_SECRET_KEY": self.secret_key,
            "TENCENT_MODERATION_REGION": REGION,
            "TENCENT_MODERATION_ENDPOINT": self.url,
        }

    def go_down(self, how: Literal["InternalError", "http_503"] = "InternalError") -> None:
        """Every request is answered ``InternalError`` (or HTTP 503) until ``come_back()``."""
        with self._lock:
            self._state.down = how

    def throttle(self) -> None:
        """Every request is answered ``RequestLimitExceeded`` until ``come_back()``."""
        with self._lock:
            self._state.throttled = True

    def fail_next(self, code: str) -> None:
        """The next signed request is answered with the error ``code`` (e.g.
        ``ResourceInsufficient``, ``UnauthorizedOperation``)."""
        with self._lock:
            self._state.next_errors.append(code)

    def come_back(self) -> None:
        with self._lock:
            self._state.down = None
            self._state.throttled = False

    def block_image(self, data: bytes) -> None:
        with self._lock:
            self._state.blocked_images.add(hashlib.sha256(data).hexdigest())

    def calls_to(self, service: str) -> list[ModerationCall]:
        with self._lock:
            return [c for c in self.calls if c.service == service]

    def close(self) -> None:
        self._server.close()

    def __enter__(self) -> FakeTencentModeration:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the protocol -----------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        request_id = new_request_id()
        action = request.headers.get("X-TC-Action", "")
        region = request.headers.get("X-TC-Region", "")
        service = "?"
        try:
            service = check_tc3(
                request,
                body,
                secret_id=self.secret_id,
                secret_key=self.secret_key,
                services=ACTIONS.keys(),
            )
            if ACTIONS[service] != action:
                raise TencentApiError("InvalidAction", f"{service} does not speak {action!r}")
            if request.headers.get("X-TC-Version") != VERSION:
                raise TencentApiError("NoSuchVersion", f"the version must be {VERSION}")
            if not region:
                raise TencentApiError("MissingParameter", "X-TC-Region is required")
            with self._lock:
                down, throttled = self._state.down, self._state.throttled
                next_error = self._state.next_errors.pop(0) if self._state.next_errors else None
            if next_error:
                raise TencentApiError(next_error, f"{next_error} (as the test asked)")
            if down == "http_503":
                self._record(ModerationCall(service, action, region, request_id, "HTTP 503"))
                return web.Response(status=503, text="Service Unavailable")
            if down == "InternalError":
                raise TencentApiError("InternalError", "an internal error occurred")
            if throttled:
                raise TencentApiError("RequestLimitExceeded", "the request rate is too high")
            params = json.loads(body)
            if service == "tms":
                payload, call = self._text(params, region, request_id)
            else:
                payload, call = await self._image(params, region, request_id)
        except TencentApiError as e:
            self._record(ModerationCall(service, action, region, request_id, e.code))
            return error_answer(e, request_id=request_id)
        self._record(call)
        return answer(payload, request_id=request_id)

    def _record(self, call: ModerationCall) -> None:
        with self._lock:
            self.calls.append(call)

    def _text(
        self, params: dict[str, Any], region: str, request_id: str
    ) -> tuple[dict[str, Any], ModerationCall]:
        try:
            text = base64.b64decode(str(params.get("Content") or ""), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise TencentApiError(
                "InvalidParameterValue.ErrTextContentType", "Content must be base64 of UTF-8"
            ) from None
        if not text:
            raise TencentApiError("InvalidParameterValue.InvalidContent", "Content is empty")
        if len(text) > MAX_TEXT_CHARS:
            raise TencentApiError(
                "InvalidParameterValue.ErrTextContentLen",
                f"Content is longer than {MAX_TEXT_CHARS} characters",
            )
        lowered = text.lower()
        hits = [(word, rule) for word, rule in self.text_rules.items() if word.lower() in lowered]
        details = [
            {
                "Label": rule.label,
                "Suggestion": rule.suggestion,
                "Keywords": [word],
                "Score": rule.score,
                "LibType": 1,
                "LibId": "",
                "LibName": "",
                "SubLabel": rule.sub_label,
            }
            for word, rule in hits
        ]
        top = max(
            (hit for hit in hits if hit[1].suggestion != "Pass"),
            key=lambda hit: (hit[1].suggestion == "Block", hit[1].score),
            default=None,
        )
        biz_type = str(params["BizType"]) if params.get("BizType") else None
        payload = {
            "BizType": biz_type or "0",
            "DataId": str(params.get("DataId") or ""),
            "Suggestion": top[1].suggestion if top else "Pass",
            "Label": top[1].label if top else "Normal",
            "SubLabel": top[1].sub_label if top else "",
            "Score": top[1].score if top else 0,
            "Keywords": [word for word, _ in hits],
            "DetailResults": details,
            "RiskDetails": None,
            "Extra": "",
            "ContextText": "",
        }
        call = ModerationCall(
            "tms",
            "TextModeration",
            region,
            request_id,
            str(payload["Suggestion"]),
            text=text,
            biz_type=biz_type,
        )
        return payload, call

    async def _image(
        self, params: dict[str, Any], region: str, request_id: str
    ) -> tuple[dict[str, Any], ModerationCall]:
        content = params.get("FileContent")
        file_url = params.get("FileUrl")
        if bool(content) == bool(file_url):
            raise TencentApiError(
                "InvalidParameter.ParameterError", "exactly one of FileContent, FileUrl is needed"
            )
        if content:
            if len(str(content)) > MAX_FILE_CONTENT_BASE64:
                raise TencentApiError(
                    "InvalidParameterValue.InvalidFileContentSize",
                    "FileContent is larger than 10 MB",
                )
            try:
                data = base64.b64decode(str(content), validate=True)
            except binascii.Error:
                raise TencentApiError(
                    "InvalidParameterValue.InvalidImageContent", "FileContent is not base64"
                ) from None
        else:
            data = await self._fetch(str(file_url))
        try:
            with Image.open(io.BytesIO(data)) as opened:
                rgb = opened.convert("RGB")
        except (OSError, ValueError):
            raise TencentApiError(
                "InvalidParameter.InvalidImageContent", "the image cannot be decoded"
            ) from None
        digest = hashlib.sha256(data).hexdigest()
        mean = tuple(ImageStat.Stat(rgb).mean)
        with self._lock:
            blocked = digest in self._state.blocked_images
        if blocked:
            label, sub_label, score, suggestion = "Porn", "SexBehavior", 99, "Block"
        elif _near(mean, (255, 0, 255)):
            label, sub_label, score, suggestion = "Porn", "Nudity", 97, "Block"
        elif _near(mean, (255, 255, 0)):
            label, sub_label, score, suggestion = "Porn", "Sexy", self.review_score, "Review"
        else:
            label, sub_label, score, suggestion = "Normal", "", 0, "Pass"
        objects = []
        if _near(mean, (0, 255, 255)):  # a QR code the policy allows: Ad 99, but Pass
            objects.append(
                {
                    "Scene": "QrCode",
                    "Suggestion": "Pass",
                    "Label": "Ad",
                    "SubLabel": "QRCode",
                    "Score": 99,
                    "Names": ["QRCode"],
                    "Details": [{"Id": 0, "Name": "QRCode", "Value": "", "Score": 99}],
                }
            )
        results = []
        if label != "Normal":
            results.append(
                {
                    "Scene": label,
                    "Suggestion": suggestion,
                    "Label": label,
                    "SubLabel": sub_label,
                    "Score": score,
                    "Details": [{"Id": 0, "Name": sub_label, "Score": score}],
                }
            )
        biz_type = str(params["BizType"]) if params.get("BizType") else None
        payload = {
            "Suggestion": suggestion,
            "Label": label,
            "SubLabel": sub_label,
            "Score": score,
            "LabelResults": results,
            "ObjectResults": objects,
            "OcrResults": [],
            "LibResults": [],
            "DataId": str(params.get("DataId") or ""),
            "BizType": biz_type or "0",
            "Extra": "",
            "FileMD5": hashlib.md5(data).hexdigest(),
        }
        call = ModerationCall(
            "ims",
            "ImageModeration",
            region,
            request_id,
            suggestion,
            biz_type=biz_type,
            file_url=str(file_url) if file_url else None,
            file_content_chars=len(str(content)) if content else None,
            image_sha256=digest,
            image_size=rgb.size,
        )
        return payload, call

    async def _fetch(self, url: str) -> bytes:
        try:
            async with aiohttp.ClientSession() as session, session.get(url) as response:
                if response.status != 200:
                    raise TencentApiError(
                        "ResourceUnavailable.ImageDownloadError",
                        f"downloading FileUrl answered HTTP {response.status}",
                    )
                return await response.read()
        except aiohttp.ClientError:
            raise TencentApiError(
                "ResourceUnavailable.ImageDownloadError", "FileUrl could not be downloaded"
            ) from None


@contextmanager
def serving_image(data: bytes, content_type: str = "image/png") -> Iterator[str]:
    """A local HTTP server that answers ``GET /image`` with ``data`` (a stand-in for a signed
    COS URL); yields that URL."""
    app = web.Application()

    async def image(_: web.Request) -> web.Response:
        return web.Response(body=data, content_type=content_type)

    app.router.add_get("/image", image)
    server = ThreadedServer(app, access_log=False)
    try:
        yield f"{server.url}/image?sign=local-test"
    finally:
        server.close()

"""A local server speaking the AWS JSON 1.1 protocol of the two moderation calls Atelier makes —
Rekognition ``DetectModerationLabels`` and Comprehend ``DetectToxicContent`` — on one URL, for
driving the real boto3 clients in tests (moto does not decide anything useful for these calls).
Test infrastructure, not product code.

What it checks, like AWS does:
- ``POST /`` with ``X-Amz-Target: RekognitionService.DetectModerationLabels`` or
  ``Comprehend_20171127.DetectToxicContent`` and ``Content-Type: application/x-amz-json-1.1``;
- the SigV4 ``Authorization`` header, recomputed here by hand from the canonical request (method,
  path, query, the signed headers, the body's SHA-256), the credential scope
  (``<date>/<region>/<rekognition|comprehend>/aws4_request``) and ``X-Amz-Date`` within 5 min:
  an unknown key → 400 ``UnrecognizedClientException``, a wrong signature, scope or date → 400
  ``InvalidSignatureException``, no signature → 400 ``MissingAuthenticationTokenException``;
- Rekognition's limits: image bytes ≤ 5 MB (``ImageTooLargeException``), PNG or JPEG
  (``InvalidImageFormatException``), 80..10 000 px a side (``InvalidParameterException``);
- Comprehend's: 1..10 segments, each 1..1024 UTF-8 bytes (``TextSizeLimitExceededException`` /
  ``InvalidRequestException``), ``LanguageCode`` ``en`` (``UnsupportedLanguageException``).
Errors are AWS's JSON shape (``{"__type": ..., "message": ...}``); every answer carries an
``x-amzn-RequestId``.

How it decides (the tests control it):
- text: each word in ``blocked_words`` (matched case-insensitively as a whole word) raises its
  labels, e.g. ``SEXUAL`` 0.93 / ``PROFANITY`` 0.91; each result lists all seven labels (at 0.01
  otherwise) and ``Toxicity`` (the highest label, or 0.02);
- images: the image's average colour — robust to re-encoding and scaling — is compared with
  ``image_rules``; by default a magenta image gets ``Explicit`` / ``Explicit Nudity`` /
  ``Exposed Female Nipple`` (97 / 96 / 95) and a yellow one ``Swimwear or Underwear`` (62);
  labels below the request's ``MinConfidence`` (default 50) are left out.
Controls: ``go_down()`` (503 ``ServiceUnavailableException``) / ``come_back()``,
``throttle(n)`` (the next ``n`` calls, or all until ``come_back``, get 400
``ThrottlingException``); ``calls`` records every request.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import io
import json
import re
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, quote

from aiohttp import web
from PIL import Image, UnidentifiedImageError

from tests.support.threaded_aiohttp import ThreadedServer

ACCESS_KEY_ID = "AKIAATELIERTEST00001"
SECRET_ACCESS_KEY = "atelierTestSecretAccessKey0000000000000000"  # a test key
REGION = "us-east-1"

REKOGNITION = "RekognitionService.DetectModerationLabels"
COMPREHEND = "Comprehend_20171127.DetectToxicContent"
_SERVICES = {REKOGNITION: "rekognition", COMPREHEND: "comprehend"}
_JSON = "application/x-amz-json-1.1"

MAX_IMAGE_BYTES = 5 * 1024 * 1024
MAX_SEGMENT_BYTES = 1024
TOXIC_LABELS = (
    "GRAPHIC",
    "HARASSMENT_OR_ABUSE",
    "HATE_SPEECH",
    "INSULT",
    "PROFANITY",
    "SEXUAL",
    "VIOLENCE_OR_THREAT",
)
BLOCKED_WORD = "xxxsmut"
DEFAULT_BLOCKED_WORDS: dict[str, dict[str, float]] = {
    BLOCKED_WORD: {"SEXUAL": 0.93, "PROFANITY": 0.91},
    "scumbag": {"INSULT": 0.88, "HARASSMENT_OR_ABUSE": 0.64},
}

MAGENTA = (255, 0, 255)
YELLOW = (255, 220, 0)
EXPLICIT_LABELS: tuple[dict[str, Any], ...] = (
    {"Name": "Explicit", "Confidence": 97.0, "ParentName": "", "TaxonomyLevel": 1},
    {"Name": "Explicit Nudity", "Confidence": 96.0, "ParentName": "Explicit", "TaxonomyLevel": 2},
    {
        "Name": "Exposed Female Nipple",
        "Confidence": 95.0,
        "ParentName": "Explicit Nudity",
        "TaxonomyLevel": 3,
    },
)
SWIMWEAR_LABELS: tuple[dict[str, Any], ...] = (
    {"Name": "Swimwear or Underwear", "Confidence": 62.0, "ParentName": "", "TaxonomyLevel": 1},
)


@dataclass(frozen=True)
class ImageRule:
    colour: tuple[int, int, int]
    labels: tuple[dict[str, Any], ...]
    tolerance: int = 40  # per channel, on the average colour


DEFAULT_IMAGE_RULES = (ImageRule(MAGENTA, EXPLICIT_LABELS), ImageRule(YELLOW, SWIMWEAR_LABELS))


@dataclass
class AwsCall:
    """One request as the server saw it."""

    target: str
    status: int = 0
    error: str = ""  # the __type answered, if any
    request_id: str = ""
    access_key_id: str = ""
    image: bytes | None = None  # DetectModerationLabels: the decoded Image.Bytes
    min_confidence: float | None = None
    segments: tuple[str, ...] = ()  # DetectToxicContent: the TextSegments' texts
    language: str = ""


class AwsError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def png(colour: tuple[int, int, int], side: int = 96) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (side, side), colour).save(out, format="PNG")
    return out.getvalue()


class FakeAwsModeration:
    def __init__(
        self,
        *,
        access_key_id: str = ACCESS_KEY_ID,
        secret_access_key: str = SECRET_ACCESS_KEY,
        region: str = REGION,
        blocked_words: dict[str, dict[str, float]] | None = None,
        image_rules: tuple[ImageRule, ...] = DEFAULT_IMAGE_RULES,
    ) -> None:
        self.access_key_id = access_key_id
        self.secret_access_key = secret_access_key
        self.region = region
        self.blocked_words = dict(DEFAULT_BLOCKED_WORDS if blocked_words is None else blocked_words)
        self.image_rules = image_rules
        self.calls: list[AwsCall] = []
        self._lock = threading.Lock()
        self._down = False
        self._throttled: int | None = 0  # calls still to throttle; None = until come_back()
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._server = ThreadedServer(app, access_log=False)
        self.url = self._server.url

    # --- controls --------------------------------------------------------------------------------

    def go_down(self) -> None:
        with self._lock:
            self._down = True

    def come_back(self) -> None:
        with self._lock:
            self._down, self._throttled = False, 0

    def throttle(self, count: int | None = None) -> None:
        """Answer the next ``count`` calls (all, when None, until ``come_back``) with
        ``ThrottlingException``."""
        with self._lock:
            self._throttled = count

    def calls_to(self, target: str) -> list[AwsCall]:
        with self._lock:
            return [c for c in self.calls if c.target == target]

    def tasks_settings(self) -> dict[str, str]:
        """The settings of a tasks service that moderates with this server."""
        return {
            "MODERATION_PROVIDER": "aws",
            "AWS_MODERATION_REGION": self.region,
            "AWS_MODERATION_ACCESS_KEY_ID": self.access_key_id,
            "AWS_MODERATION_SECRET_ACCESS_KEY": self.secret_access_key,
            "AWS_MODERATION_ENDPOINT_URL": self.url,
        }

    def close(self) -> None:
        self._server.close()

    def __enter__(self) -> FakeAwsModeration:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the wire --------------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        call = AwsCall(target=request.headers.get("X-Amz-Target", ""), request_id=str(uuid.uuid4()))
        with self._lock:
            self.calls.append(call)
        try:
            answer = self._answer(request, body, call)
            call.status = 200
            return _json(200, answer, call.request_id)
        except AwsError as e:
            call.status, call.error = e.status, e.code
            return _json(e.status, {"__type": e.code, "message": e.message}, call.request_id)

    def _answer(self, request: web.Request, body: bytes, call: AwsCall) -> dict[str, Any]:
        with self._lock:
            down = self._down
        if down:
            raise AwsError(503, "ServiceUnavailableException", "Service is unavailable")
        if request.method != "POST" or request.path != "/":
            raise AwsError(404, "UnknownOperationException", f"{request.method} {request.path}")
        service = _SERVICES.get(call.target)
        if service is None:
            raise AwsError(400, "UnknownOperationException", f"unknown target {call.target!r}")
        if request.headers.get("Content-Type", "").split(";")[0].strip() != _JSON:
            raise AwsError(400, "SerializationException", f"Content-Type must be {_JSON}")
        call.access_key_id = self._verify_signature(request, body, service)
        with self._lock:
            throttled = self._throttled is None or self._throttled > 0
            if self._throttled:
                self._throttled -= 1
        if throttled:
            raise AwsError(400, "ThrottlingException", "Rate exceeded")
        try:
            payload = json.loads(body)
        except ValueError as exc:
            raise AwsError(400, "SerializationException", "the body is not JSON") from exc
        if not isinstance(payload, dict):
            raise AwsError(400, "SerializationException", "the body is not a JSON object")
        if call.target == REKOGNITION:
            return self._moderation_labels(payload, call)
        return self._toxic_content(payload, call)

    def _verify_signature(self, request: web.Request, body: bytes, service: str) -> str:
        header = request.headers.get("Authorization", "")
        if not header:
            raise AwsError(
                400, "MissingAuthenticationTokenException", "Missing Authentication Token"
            )
        algorithm, _, rest = header.partition(" ")
        fields = dict(part.strip().split("=", 1) for part in rest.split(",") if "=" in part.strip())
        if (
            algorithm != "AWS4-HMAC-SHA256"
            or not {
                "Credential",
                "SignedHeaders",
                "Signature",
            }
            <= fields.keys()
        ):
            raise AwsError(400, "IncompleteSignatureException", "malformed Authorization header")
        key_id, _, scope = fields["Credential"].partition("/")
        if key_id != self.access_key_id:
            raise AwsError(
                400,
                "UnrecognizedClientException",
                "The security token included in the request is invalid.",
            )
        amz_date = request.headers.get("X-Amz-Date", "")
        try:
            signed_at = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        except ValueError as exc:
            raise AwsError(400, "IncompleteSignatureException", "bad X-Amz-Date") from exc
        if abs(datetime.now(UTC) - signed_at) > timedelta(minutes=5):
            raise AwsError(400, "InvalidSignatureException", "Signature expired")
        expected_scope = f"{amz_date[:8]}/{self.region}/{service}/aws4_request"
        if scope != expected_scope:
            raise AwsError(
                400,
                "InvalidSignatureException",
                f"Credential should be scoped to {expected_scope!r}",
            )
        signed_headers = fields["SignedHeaders"].split(";")
        if "host" not in signed_headers or signed_headers != sorted(signed_headers):
            raise AwsError(400, "InvalidSignatureException", "SignedHeaders must list host")
        canonical_headers = ""
        for name in signed_headers:
            values = request.headers.getall(name, [])
            if not values:
                raise AwsError(400, "InvalidSignatureException", f"signed header {name} absent")
            canonical_headers += f"{name}:{','.join(' '.join(v.split()) for v in values)}\n"
        query = sorted(
            (quote(k, safe="-_.~"), quote(v, safe="-_.~"))
            for k, v in parse_qsl(request.query_string, keep_blank_values=True)
        )
        canonical_request = "\n".join(
            [
                request.method,
                quote(request.path, safe="/-_.~"),
                "&".join(f"{k}={v}" for k, v in query),
                canonical_headers,
                ";".join(signed_headers),
                hashlib.sha256(body).hexdigest(),
            ]
        )
        string_to_sign = "\n".join(
            [
                "AWS4-HMAC-SHA256",
                amz_date,
                scope,
                hashlib.sha256(canonical_request.encode()).hexdigest(),
            ]
        )
        key = ("AWS4" + self.secret_access_key).encode()
        for part in (amz_date[:8], self.region, service, "aws4_request"):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        expected = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, fields["Signature"]):
            raise AwsError(
                400,
                "InvalidSignatureException",
                "The request signature we calculated does not match the signature you "
                "provided. Check your AWS Secret Access Key and signing method.",
            )
        return key_id

    # --- Rekognition -----------------------------------------------------------------------------

    def _moderation_labels(self, payload: dict[str, Any], call: AwsCall) -> dict[str, Any]:
        image = payload.get("Image")
        if not isinstance(image, dict) or not isinstance(image.get("Bytes"), str):
            raise AwsError(400, "InvalidParameterException", "Image.Bytes is required")
        try:
            data = base64.b64decode(image["Bytes"], validate=True)
        except (binascii.Error, ValueError) as exc:
            raise AwsError(400, "InvalidParameterException", "Image.Bytes is not base64") from exc
        call.image = data
        min_confidence = payload.get("MinConfidence", 50.0)
        if not isinstance(min_confidence, int | float) or not 0 <= min_confidence <= 100:
            raise AwsError(400, "InvalidParameterException", "MinConfidence must be 0..100")
        call.min_confidence = float(min_confidence)
        if len(data) > MAX_IMAGE_BYTES:
            raise AwsError(400, "ImageTooLargeException", "Image size is too large.")
        try:
            with Image.open(io.BytesIO(data)) as img:
                if img.format not in ("PNG", "JPEG"):
                    raise AwsError(
                        400, "InvalidImageFormatException", "Request has unsupported image format"
                    )
                if min(img.size) < 80 or max(img.size) > 10_000:
                    raise AwsError(
                        400, "InvalidParameterException", f"image dimensions {img.size} refused"
                    )
                r, g, b = img.convert("RGB").resize((1, 1), Image.Resampling.BOX).getpixel((0, 0))  # type: ignore[misc]
        except (UnidentifiedImageError, OSError) as exc:
            raise AwsError(
                400, "InvalidImageFormatException", "Request has invalid image format"
            ) from exc
        labels: list[dict[str, Any]] = []
        for rule in self.image_rules:
            if all(
                abs(c - w) <= rule.tolerance for c, w in zip((r, g, b), rule.colour, strict=True)
            ):
                labels.extend(rule.labels)
        return {
            "ModerationLabels": [x for x in labels if x["Confidence"] >= call.min_confidence],
            "ModerationModelVersion": "7.0",
            "ContentTypes": [],
        }

    # --- Comprehend ------------------------------------------------------------------------------

    def _toxic_content(self, payload: dict[str, Any], call: AwsCall) -> dict[str, Any]:
        segments = payload.get("TextSegments")
        if not isinstance(segments, list) or not 1 <= len(segments) <= 10:
            raise AwsError(400, "InvalidRequestException", "TextSegments: 1 to 10 items")
        texts = tuple(s.get("Text") if isinstance(s, dict) else None for s in segments)
        if not all(isinstance(t, str) and t for t in texts):
            raise AwsError(400, "InvalidRequestException", "each TextSegment needs a Text")
        call.segments = tuple(str(t) for t in texts)
        call.language = str(payload.get("LanguageCode", ""))
        if call.language != "en":
            raise AwsError(
                400, "UnsupportedLanguageException", f"language {call.language!r} unsupported"
            )
        if any(len(t.encode()) > MAX_SEGMENT_BYTES for t in call.segments):
            raise AwsError(400, "TextSizeLimitExceededException", "a segment is over 1 KB")
        results = []
        for text in call.segments:
            scores = dict.fromkeys(TOXIC_LABELS, 0.01)
            words = set(re.findall(r"\w+", text.lower()))
            for word, raised in self.blocked_words.items():
                if word.lower() in words:
                    for name, score in raised.items():
                        scores[name] = max(scores[name], score)
            top = max(scores.values())
            results.append(
                {
                    "Labels": [{"Name": n, "Score": s} for n, s in scores.items()],
                    "Toxicity": top if top > 0.01 else 0.02,
                }
            )
        return {"ResultList": results}


def _json(status: int, payload: dict[str, Any], request_id: str) -> web.Response:
    return web.Response(
        status=status,
        body=json.dumps(payload).encode(),
        headers={"Content-Type": _JSON, "x-amzn-RequestId": request_id},
    )

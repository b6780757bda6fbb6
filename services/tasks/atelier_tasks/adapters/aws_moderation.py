"""Content moderation on AWS (the global market): Amazon Rekognition ``DetectModerationLabels``
for images and Amazon Comprehend ``DetectToxicContent`` for text, with boto3.

Images
  Sent as ``Image={"Bytes": ...}``. Rekognition reads PNG and JPEG of at most 5 MB (raw bytes)
  and 80..10 000 px a side: anything else (WebP, GIF, a 12 MB PNG, a 60 px thumbnail) is
  re-encoded here with Pillow first — other formats become PNG (JPEG once PNG is too big),
  oversized images are scaled down until they fit. An image Pillow cannot read is
  ``ProviderRejected`` without a call. ``MinConfidence`` is ``min(50, threshold)`` so every label
  that could decide is reported. Labels keep Rekognition's own names (``Explicit``,
  ``Explicit Nudity``, ``Exposed Female Nipple`` …; confidence / 100). The taxonomy is a tree
  (``ParentName``; ``""`` at the top): each ancestor of a label is raised to at least that
  label's confidence, so the top-level category always carries the strongest finding beneath it;
  a name reported twice keeps its maximum. Every category blocks — ``Swimwear or Underwear``,
  ``Alcohol``, ``Gambling`` too: any label at or above the threshold rejects. ``ContentTypes``
  (animated / illustrated) are not unsafe content and are ignored.

Text
  Comprehend's toxicity detection understands English only (``LanguageCode="en"``; the only
  value the API accepts today). Other languages are still sent as ``en`` — scored, but weakly:
  markets with non-English prompts should moderate with ``tencent`` or ``local``. Text goes in
  segments of at most 1 000 UTF-8 bytes (the API's limit is 1 KB), cut at whitespace where
  possible and never inside a character, ten segments per call (more → several calls, stopping
  at the first rejection). Per segment Comprehend returns seven labels (``PROFANITY``,
  ``SEXUAL``, ``HATE_SPEECH`` …) and an overall ``Toxicity``, reported as ``TOXICITY``; each
  keeps its maximum over the segments, labels under ``min(0.5, threshold)`` are left out, and
  any at or above the threshold rejects.

The decision's ``request_id`` is the call's ``ResponseMetadata.RequestId`` (several calls: their
ids joined by commas).

Errors: no answer (connection refused or reset, timeouts), throttling
(``ThrottlingException``, ``ProvisionedThroughputExceededException``,
``TooManyRequestsException``), ``InternalServerError`` / ``InternalServerException``,
``ServiceUnavailable`` and any 5xx → ``ProviderUnavailable`` (boto3 has already retried once:
"standard" mode, two attempts in all — the saga retries later with backoff). Everything else —
bad or unknown credentials, signature, an image or text the service refuses, an unsupported
language — → ``ProviderRejected`` naming the service, the error code and AWS's message (never
a key). The two boto3 clients are built once, from a session of their own, and are safe to
share between threads.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Sequence
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ParamValidationError,
    PartialCredentialsError,
    ReadTimeoutError,
)
from PIL import Image, ImageOps, UnidentifiedImageError

from atelier_ports.errors import ProviderRejected, ProviderUnavailable
from atelier_tasks.application.ports.moderation import (
    ImageToModerate,
    ModerationDecision,
    ModerationLabel,
    Verdict,
)

MAX_IMAGE_BYTES = 5 * 1024 * 1024  # Rekognition: image bytes passed in the request
MIN_IMAGE_SIDE = 80
MAX_IMAGE_SIDE = 10_000  # DetectModerationLabels
SEGMENT_BYTES = 1000  # DetectToxicContent: each segment ≤ 1 KB (read conservatively)
SEGMENTS_PER_CALL = 10
TOXICITY = "TOXICITY"  # Comprehend's overall score per segment, reported as a label

_UNAVAILABLE_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "ProvisionedThroughputExceededException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "InternalServerError",
        "InternalServerException",
        "InternalFailure",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)
_NO_ANSWER = (
    EndpointConnectionError,
    ConnectTimeoutError,
    ReadTimeoutError,
    ConnectionClosedError,
)


class AwsModeration:
    """The ``Moderation`` port on Rekognition (images) and Comprehend (text)."""

    def __init__(
        self,
        *,
        region: str,
        threshold: float,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        endpoint_url: str | None = None,
    ) -> None:
        if not region:
            raise ValueError("AWS moderation needs a region")
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"the moderation threshold must be in (0, 1], not {threshold}")
        self._threshold = threshold
        self._floor = min(0.5, threshold)  # labels under this are not worth recording
        config = Config(
            connect_timeout=3,
            read_timeout=10,
            retries={"mode": "standard", "total_max_attempts": 2},
        )
        # A session of our own (sessions are not thread-safe; the clients made from it are).
        # Empty credentials fall through to boto3's chain (env, profile, instance role).
        session = boto3.session.Session(
            aws_access_key_id=access_key_id or None,
            aws_secret_access_key=secret_access_key or None,
            region_name=region,
        )
        self._rekognition: Any = session.client(
            "rekognition", endpoint_url=endpoint_url or None, config=config
        )
        self._comprehend: Any = session.client(
            "comprehend", endpoint_url=endpoint_url or None, config=config
        )

    @property
    def name(self) -> str:
        return "aws"

    def check_text(self, text: str) -> ModerationDecision:
        segments = split_utf8(text, SEGMENT_BYTES)
        scores: dict[str, float] = {}
        request_ids: list[str] = []
        for start in range(0, len(segments), SEGMENTS_PER_CALL):
            batch = segments[start : start + SEGMENTS_PER_CALL]
            response = _call(
                "Comprehend",
                self._comprehend.detect_toxic_content,
                TextSegments=[{"Text": segment} for segment in batch],
                LanguageCode="en",
            )
            request_ids.append(_request_id(response))
            for result in response.get("ResultList") or ():
                _raise_to(scores, TOXICITY, _score(result.get("Toxicity")))
                for label in result.get("Labels") or ():
                    _raise_to(scores, str(label.get("Name") or ""), _score(label.get("Score")))
            if self._rejects(scores):
                break  # decided: the rest of a long text changes nothing
        return self._decide(scores, request_ids)

    def check_image(self, image: ImageToModerate) -> ModerationDecision:
        data = prepare_image(image.data)
        response = _call(
            "Rekognition",
            self._rekognition.detect_moderation_labels,
            Image={"Bytes": data},
            MinConfidence=self._floor * 100,
        )
        labels = [
            (str(label.get("Name") or ""), _score(label.get("Confidence"), scale=100.0))
            for label in response.get("ModerationLabels") or ()
        ]
        parents = {
            str(label.get("Name") or ""): str(label.get("ParentName") or "")
            for label in response.get("ModerationLabels") or ()
        }
        scores: dict[str, float] = {}
        for name, confidence in labels:
            seen: set[str] = set()
            # the label, then each ancestor (named by ParentName even when not reported itself)
            while name and name not in seen:
                seen.add(name)
                _raise_to(scores, name, confidence)
                name = parents.get(name, "")
        return self._decide(scores, [_request_id(response)])

    def _rejects(self, scores: dict[str, float]) -> bool:
        return any(score >= self._threshold for score in scores.values())

    def _decide(self, scores: dict[str, float], request_ids: Sequence[str]) -> ModerationDecision:
        labels = tuple(
            ModerationLabel(name, score)
            for name, score in sorted(scores.items(), key=lambda item: (-item[1], item[0]))
            if name and score >= self._floor
        )
        return ModerationDecision(
            verdict=Verdict.REJECTED if self._rejects(scores) else Verdict.ALLOWED,
            provider=self.name,
            labels=labels,
            request_id=",".join(i for i in request_ids if i) or None,
        )


def _call(service: str, operation: Callable[..., Any], **params: Any) -> dict[str, Any]:
    try:
        response: dict[str, Any] = operation(**params)
    except ClientError as exc:
        error = exc.response.get("Error") or {}
        code = str(error.get("Code") or "")
        status = int((exc.response.get("ResponseMetadata") or {}).get("HTTPStatusCode") or 0)
        message = str(error.get("Message") or "")[:300]
        what = f"AWS {service} answered {status} {code}: {message}".rstrip(": ")
        if code in _UNAVAILABLE_CODES or status >= 500:
            raise ProviderUnavailable(what) from exc
        raise ProviderRejected(what) from exc
    except (NoCredentialsError, PartialCredentialsError) as exc:
        raise ProviderRejected(f"AWS {service}: no usable AWS credentials configured") from exc
    except ParamValidationError as exc:  # our request is malformed: a retry sends it again
        raise ProviderRejected(f"AWS {service}: invalid request: {exc}") from exc
    except _NO_ANSWER as exc:
        raise ProviderUnavailable(f"AWS {service} did not answer: {exc}") from exc
    except BotoCoreError as exc:
        raise ProviderUnavailable(f"AWS {service} call failed: {exc}") from exc
    return response


def _request_id(response: dict[str, Any]) -> str:
    return str((response.get("ResponseMetadata") or {}).get("RequestId") or "")


def _score(value: object, *, scale: float = 1.0) -> float:
    if not isinstance(value, int | float):
        return 0.0
    return min(1.0, max(0.0, float(value) / scale))


def _raise_to(scores: dict[str, float], name: str, score: float) -> None:
    if name:
        scores[name] = max(score, scores.get(name, 0.0))


def split_utf8(text: str, max_bytes: int) -> list[str]:
    """``text`` in pieces of at most ``max_bytes`` UTF-8 bytes, never cut inside a character,
    cut after whitespace where the piece would otherwise lose more than half its room; pieces
    that are only whitespace are dropped (Comprehend refuses empty segments)."""
    data = text.encode()
    pieces: list[str] = []
    start = 0
    while start < len(data):
        end = min(start + max_bytes, len(data))
        if end < len(data):
            while end > start and (data[end] & 0xC0) == 0x80:  # a continuation byte
                end -= 1
            space = max(data.rfind(b" ", start, end), data.rfind(b"\n", start, end))
            if space >= start + max_bytes // 2:
                end = space + 1
        if end == start:  # max_bytes is smaller than one character
            raise ValueError(f"cannot split text into pieces of {max_bytes} bytes")
        piece = data[start:end].decode()
        if piece.strip():
            pieces.append(piece)
        start = end
    return pieces


def prepare_image(data: bytes) -> bytes:
    """The image as Rekognition takes it: PNG or JPEG, ≤ 5 MB, 80..10 000 px a side. Bytes that
    already are are returned untouched; others are re-encoded (and scaled) with Pillow."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            fmt = img.format
            width, height = img.size
            if (
                fmt in ("JPEG", "PNG")
                and len(data) <= MAX_IMAGE_BYTES
                and min(width, height) >= MIN_IMAGE_SIDE
                and max(width, height) <= MAX_IMAGE_SIDE
            ):
                return data
            img.seek(0)  # the first frame of an animation
            frame = ImageOps.exif_transpose(img)
            has_alpha = frame.mode in ("RGBA", "LA", "PA") or "transparency" in frame.info
            frame = frame.convert("RGBA" if has_alpha else "RGB")
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise ProviderRejected(
            "the image cannot be read (PNG, JPEG, WebP or GIF expected)"
        ) from exc
    return _fit(frame, prefer="JPEG" if fmt == "JPEG" else "PNG")


def _fit(img: Image.Image, *, prefer: str) -> bytes:
    width, height = img.size
    scale = min(1.0, MAX_IMAGE_SIDE / max(width, height))
    if min(width, height) * scale < MIN_IMAGE_SIDE:
        scale = min(MIN_IMAGE_SIDE / min(width, height), MAX_IMAGE_SIDE / max(width, height))
    fmt = prefer
    for _ in range(12):
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        resized = img if size == img.size else img.resize(size, Image.Resampling.LANCZOS)
        encoded = _encode(resized, fmt)
        if len(encoded) <= MAX_IMAGE_BYTES:
            return encoded
        if fmt == "PNG":
            fmt = "JPEG"  # photographs compress far better as JPEG; try that at this size first
            continue
        scale *= max(0.5, min(0.9, math.sqrt(MAX_IMAGE_BYTES / len(encoded)) * 0.95))
    raise ProviderRejected("the image could not be made small enough for Rekognition (5 MB)")


def _encode(img: Image.Image, fmt: str) -> bytes:
    out = io.BytesIO()
    if fmt == "JPEG":
        if img.mode == "RGBA":
            flat = Image.new("RGB", img.size, (255, 255, 255))
            flat.paste(img, mask=img.getchannel("A"))
            img = flat
        img.save(out, format="JPEG", quality=88)
    else:
        img.save(out, format="PNG", optimize=False)
    return out.getvalue()

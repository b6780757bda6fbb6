"""The ``Moderation`` port with Tencent Cloud content moderation (the cn market's provider):
Text Moderation (TMS ``TextModeration``) and Image Moderation (IMS ``ImageModeration``), API
version 2020-12-29, through the official SDKs ``tencentcloud-sdk-python-tms`` / ``-ims``, which
sign every request with TC3-HMAC-SHA256. ``endpoint`` (tests only) names one local server
(``http://127.0.0.1:PORT``) that answers both services — ``tests/support/
tencent_moderation_server.py``.

Requests:

- text: ``Content`` is the base64 of the UTF-8 text. TMS takes at most 10,000 Unicode characters
  per call, so longer text is checked in chunks of 10,000 that overlap by 200 characters (a term
  cut by a chunk boundary is still seen whole in one chunk); any chunk rejected → rejected.
  Empty (or blank) text is allowed without a call.
- image: by ``FileUrl`` when the caller has a signed URL (IMS reads COS objects itself; the URL
  source may be up to 30 MB), else ``FileContent``, the base64 of the bytes — at most 10 MB of
  base64, so a larger image is downscaled and re-encoded as JPEG with Pillow until it fits.
- ``BizType``: the moderation policy configured in the CMS console, when given.

Decision (the same for both services): every label the answer names — the top-level
``Label``/``Score``, TMS ``DetailResults[]``, IMS ``LabelResults[]``, ``ObjectResults[]``,
``OcrResults[]``, ``LibResults[]`` and their ``Details[]`` — becomes a :class:`ModerationLabel`
named by its ``Label`` with confidence ``Score / 100`` (one per label, the highest). Left out:
``Normal``, zero scores, and results Tencent itself suggests ``Pass`` for (e.g. a brand logo
scored ``Ad`` 99 that the BizType policy allows — in a clothing shop that is not a finding). The
verdict is REJECTED when Tencent's ``Suggestion`` is ``Block``, or when any label reaches
``threshold``.
``Review`` ("a person should look") is **not** a rejection by itself: it is judged by the same
threshold rule as everything else — a Review of Porn at 72 is allowed with threshold 0.8, at 85 it
is rejected. ``request_id`` is the answer's ``RequestId`` (for chunked text, those of every chunk,
comma-separated).

Errors: network trouble, timeouts, HTTP errors (the SDK's ``ClientNetworkError`` /
``ServerNetworkError``), ``RequestLimitExceeded*``, ``LimitExceeded*``, ``InternalError*``,
``ResourceUnavailable*`` and ``FailedOperation*`` → ``ProviderUnavailable`` (retry later; never
fail open). Refused keys (``AuthFailure*``), missing permissions (``UnauthorizedOperation*``,
``OperationDenied``), no package or balance (``ResourceInsufficient``, ``ResourcesSoldOut``,
``UnsupportedOperation``) and requests Tencent will not take (``InvalidParameter*``, an unreadable
image) → ``ProviderRejected`` with what an admin can do about it. Errors and logs carry Tencent's
error code and request id only: never the secret key, never the text checked.

The calls are synchronous (the worker calls ports from threads); each call builds its own SDK
client (an SDK client keeps per-request state).
"""

from __future__ import annotations

import base64
import io
import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import urlsplit

from PIL import Image
from tencentcloud.common import credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.ims.v20201229 import ims_client
from tencentcloud.ims.v20201229 import models as ims_models
from tencentcloud.tms.v20201229 import models as tms_models
from tencentcloud.tms.v20201229 import tms_client

from atelier_ports.errors import ProviderRejected, ProviderUnavailable
from atelier_tasks.application.ports.moderation import (
    ImageToModerate,
    ModerationDecision,
    ModerationLabel,
    Verdict,
)

log = logging.getLogger("atelier.tasks.moderation.tencent")

NAME = "tencent"
# TMS: "the submitted texts can not be longer than 10,000 unicode characters".
TEXT_CHUNK_CHARS = 10_000
TEXT_CHUNK_OVERLAP = 200
# IMS: FileContent "Base64 编码内容大小不得超过10MB"; FileUrl sources up to 30 MB.
MAX_FILE_CONTENT_BASE64 = 10 * 1024 * 1024
MAX_FILE_URL_BYTES = 30 * 1024 * 1024
TIMEOUT_SECONDS = 15
_NORMAL = "Normal"
_BLOCK = "Block"
_PASS = "Pass"
# Where each service lists its results: TMS DetailResults; IMS the classifier's LabelResults and
# the object, OCR and image-library results.
_TMS_RESULTS = ("DetailResults",)
_IMS_RESULTS = ("LabelResults", "ObjectResults", "OcrResults", "LibResults")

_UNAVAILABLE_PREFIXES = (
    "ClientNetworkError",
    "ServerNetworkError",
    "RequestLimitExceeded",
    "LimitExceeded",
    "InternalError",
    "ResourceUnavailable",
    "FailedOperation",
)
# Exceptions to the prefixes above: Tencent will never read this image, however often asked.
_UNREADABLE_IMAGE = frozenset({"ResourceUnavailable.InvalidImageContent"})


def text_chunks(
    text: str, size: int = TEXT_CHUNK_CHARS, overlap: int = TEXT_CHUNK_OVERLAP
) -> list[str]:
    """``text`` in pieces of at most ``size`` characters, each overlapping the previous one by
    ``overlap`` characters."""
    if len(text) <= size:
        return [text]
    step = size - overlap
    chunks = []
    for start in range(0, len(text), step):
        chunks.append(text[start : start + size])
        if start + size >= len(text):
            break
    return chunks


def fit_image(data: bytes, max_bytes: int) -> bytes:
    """``data`` unchanged when it is at most ``max_bytes``, else the image downscaled and
    re-encoded as JPEG until it is. Raises ProviderRejected when it is not an image."""
    if len(data) <= max_bytes:
        return data
    try:
        with Image.open(io.BytesIO(data)) as opened:
            image = opened.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise ProviderRejected("Tencent IMS: the image cannot be read (not an image)") from exc
    width, height = image.size
    scale = min(1.0, (max_bytes / len(data)) ** 0.5)
    while True:
        size = (max(1, int(width * scale)), max(1, int(height * scale)))
        out = io.BytesIO()
        image.resize(size, Image.Resampling.LANCZOS).save(out, "JPEG", quality=85)
        if out.tell() <= max_bytes or size == (1, 1):
            return out.getvalue()
        scale *= 0.75


def _split_endpoint(endpoint: str) -> tuple[str, str]:
    """``http://127.0.0.1:PORT`` → ("http", "127.0.0.1:PORT"); a bare host is HTTPS."""
    if "://" not in endpoint:
        return "https", endpoint.strip().rstrip("/")
    parts = urlsplit(endpoint.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("the Tencent moderation endpoint must be a host or an http(s) URL")
    return parts.scheme, parts.netloc


def _findings(results: Iterable[Any]) -> Iterator[tuple[str, Any]]:
    """(Label, Score) of each result, and of its details (a detail's own Label when it has one,
    as OCR details do), except where Tencent itself suggests Pass."""
    for result in results:
        if str(getattr(result, "Suggestion", None) or "") == _PASS:
            continue  # e.g. an Ad logo the BizType policy allows: not a finding
        label = str(getattr(result, "Label", None) or "")
        yield label, getattr(result, "Score", None)
        for detail in getattr(result, "Details", None) or ():
            yield str(getattr(detail, "Label", None) or label), getattr(detail, "Score", None)


class TencentModeration:
    def __init__(
        self,
        *,
        secret_id: str,
        secret_key: str,
        region: str,
        threshold: float,
        biz_type: str | None = None,
        endpoint: str | None = None,
    ) -> None:
        if not (secret_id and secret_key and region):
            raise ValueError("Tencent moderation needs a SecretId, a SecretKey and a region")
        if not 0.0 < threshold <= 1.0:
            raise ValueError("the moderation threshold must be in (0, 1]")
        self._credential = credential.Credential(secret_id, secret_key)
        self._region = region
        self._threshold = threshold
        self._biz_type = biz_type or None
        self._scheme = "https"
        self._host: str | None = None  # None: the SDK's own, tms./ims.tencentcloudapi.com
        if endpoint:
            self._scheme, self._host = _split_endpoint(endpoint)

    def __repr__(self) -> str:  # never the keys
        return f"TencentModeration(region={self._region!r}, threshold={self._threshold})"

    @property
    def name(self) -> str:
        return NAME

    # -- the port ---------------------------------------------------------------------------

    def check_text(self, text: str) -> ModerationDecision:
        if not text.strip():
            return ModerationDecision(verdict=Verdict.ALLOWED, provider=NAME)
        answers = []
        for chunk in text_chunks(text):
            request = tms_models.TextModerationRequest()
            request.Content = base64.b64encode(chunk.encode("utf-8")).decode("ascii")
            if self._biz_type:
                request.BizType = self._biz_type
            answers.append(self._call("tms", self._tms().TextModeration, request))
        return self._decide(answers, _TMS_RESULTS)

    def check_image(self, image: ImageToModerate) -> ModerationDecision:
        request = ims_models.ImageModerationRequest()
        if image.url and len(image.data) <= MAX_FILE_URL_BYTES:
            request.FileUrl = image.url
        else:
            # base64 grows 4/3: the raw bytes that stay within the FileContent limit.
            data = fit_image(image.data, MAX_FILE_CONTENT_BASE64 // 4 * 3)
            request.FileContent = base64.b64encode(data).decode("ascii")
        if self._biz_type:
            request.BizType = self._biz_type
        answer = self._call("ims", self._ims().ImageModeration, request)
        return self._decide([answer], _IMS_RESULTS)

    # -- the SDK ----------------------------------------------------------------------------

    def _profile(self) -> ClientProfile:
        http = HttpProfile(protocol=self._scheme, endpoint=self._host, reqTimeout=TIMEOUT_SECONDS)
        return ClientProfile(httpProfile=http, language="en-US")

    def _tms(self) -> tms_client.TmsClient:
        return tms_client.TmsClient(self._credential, self._region, self._profile())

    def _ims(self) -> ims_client.ImsClient:
        return ims_client.ImsClient(self._credential, self._region, self._profile())

    def _call(self, service: str, method: Callable[[Any], Any], request: Any) -> Any:
        try:
            return method(request)
        except TencentCloudSDKException as exc:
            code = str(exc.get_code() or "unknown")
            request_id = exc.get_request_id()
            log.warning(
                "Tencent moderation did not answer",
                extra={"fields": {"service": service, "code": code, "request_id": request_id}},
            )
            raise _translate(service, code, request_id) from None
        except (OSError, ValueError, KeyError) as exc:  # e.g. an answer that is not JSON
            log.warning(
                "Tencent moderation could not be reached",
                extra={"fields": {"service": service, "error": type(exc).__name__}},
            )
            raise ProviderUnavailable(f"Tencent {service.upper()} could not be reached") from None

    def _decide(self, answers: list[Any], result_fields: tuple[str, ...]) -> ModerationDecision:
        confidence: dict[str, float] = {}
        blocked = False
        for answer in answers:
            blocked = blocked or str(answer.Suggestion or "") == _BLOCK
            found = list(_findings([answer]))  # the top-level Suggestion, Label and Score
            for name in result_fields:
                found += _findings(getattr(answer, name, None) or ())
            for label, score in found:
                if not label or label == _NORMAL or not score:
                    continue
                value = min(1.0, max(0.0, float(score) / 100.0))
                confidence[label] = max(value, confidence.get(label, 0.0))
        labels = tuple(
            ModerationLabel(name=name, confidence=value)
            for name, value in sorted(confidence.items(), key=lambda item: -item[1])
        )
        rejected = blocked or any(label.confidence >= self._threshold for label in labels)
        ids = [str(answer.RequestId) for answer in answers if answer.RequestId]
        return ModerationDecision(
            verdict=Verdict.REJECTED if rejected else Verdict.ALLOWED,
            provider=NAME,
            labels=labels,
            request_id=",".join(ids) or None,
        )


def _translate(service: str, code: str, request_id: str | None) -> Exception:
    """A Tencent error code → ProviderUnavailable (retry) or ProviderRejected (an admin acts)."""
    what = "TMS TextModeration" if service == "tms" else "IMS ImageModeration"
    ref = f"({code}, request {request_id})" if request_id else f"({code})"
    if code in _UNREADABLE_IMAGE:
        return ProviderRejected(f"Tencent {what} cannot read this image {ref}")
    if code.startswith(_UNAVAILABLE_PREFIXES):
        return ProviderUnavailable(f"Tencent {what} is unavailable for now {ref}")
    if code.startswith("AuthFailure.SignatureExpire"):
        reason = "the request's timestamp is too far off: check this server's clock"
    elif code.startswith("AuthFailure"):
        reason = (
            "the keys were refused: check TENCENT_MODERATION_SECRET_ID and "
            "TENCENT_MODERATION_SECRET_KEY (an active API key of the account)"
        )
    elif code.startswith(("UnauthorizedOperation", "OperationDenied")):
        reason = (
            f"the keys may not call {service}: grant the CAM user the "
            f"Qcloud{service.upper()}FullAccess policy (or {service}:* actions)"
        )
    elif code.startswith(("ResourceInsufficient", "ResourcesSoldOut", "UnsupportedOperation")):
        reason = (
            "the account has no moderation package or balance left: open the service or top "
            "up in the Tencent Cloud content security (CMS) console"
        )
    elif code == "InvalidParameterValue.InvalidBizType":
        reason = "the BizType (moderation policy) is not configured in the CMS console"
    elif service == "ims" and code.startswith(("InvalidParameter", "ResourceUnavailable")):
        reason = "the image was refused (format, size or URL)"
    else:
        reason = "the request was refused"
    return ProviderRejected(f"Tencent {what}: {reason} {ref}")

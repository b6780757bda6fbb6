"""A Tencent COS-compatible server (one bucket) with Cloud Infinite's ``Pic-Operations`` and an STS
endpoint, for driving the real ``cos-python-sdk-v5`` and ``qcloud-python-sts`` in tests.

What it checks, like COS does (and moto cannot):
- every request's ``q-sign-algorithm=sha1`` signature (``Authorization`` header or presigned query),
  recomputed per Tencent's algorithm over the method, the decoded path, the listed URL parameters
  and the listed headers (``host`` compared without the port), and its ``q-sign-time`` window;
- temporary keys issued by the STS endpoint (``GetFederationToken``, signed per the STS SDK:
  base64 HMAC-SHA1 over ``POST<domain>/?<sorted params>``): the request must carry their
  ``x-cos-security-token``, be within their expiry, and be allowed by the policy they were issued
  with — action, resource (``qcs::cos:<region>:uid/<appid>:<bucket>/<prefix>*``) and conditions
  (``numeric_less_than_equal`` on ``cos:content-length``, ``string_equal`` / ``string_like`` on
  ``cos:content-type``); anything else → 403 ``AccessDenied``.

Object operations: PUT (plain, ``x-cos-copy-source`` copies, ``Pic-Operations`` processes on
upload), GET, HEAD, DELETE, and ``POST /<key>?image_process`` (cloud processing of a stored object).
Rules understood: ``imageMogr2/auto-orient/thumbnail/<W>x<H>/pad/1/color/<urlsafe-b64>/format/<f>``
(any subset, that order or another); an unknown rule is 400 ``InvalidArgument``, an input that is
not an image 400 ``InvalidImageFormat``.
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import hmac
import io
import itertools
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, unquote
from xml.sax.saxutils import escape

from aiohttp import web
from PIL import Image, ImageOps, UnidentifiedImageError

from tests.support.threaded_aiohttp import ThreadedServer

SECRET_ID = "AKIDatelierTestSecretId0000000000000"
SECRET_KEY = "atelierTestSecretKey00000000000000"
BUCKET = "atelier-media-1250000000"
REGION = "ap-guangzhou"
APPID = BUCKET.rsplit("-", 1)[1]

_AUTH_PARAMS = {
    "q-sign-algorithm",
    "q-ak",
    "q-sign-time",
    "q-key-time",
    "q-header-list",
    "q-url-param-list",
    "q-signature",
}


class CosError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass
class StoredObject:
    data: bytes
    content_type: str
    meta: dict[str, str] = field(default_factory=dict)


@dataclass
class TemporaryKey:
    secret_key: str
    token: str
    policy: dict[str, Any]
    expires: int


def _q(value: str) -> str:
    return quote(value.encode(), "-_.~")


def _sign(secret_key: str, key_time: str, string: str) -> str:
    sign_key = hmac.new(secret_key.encode(), key_time.encode(), hashlib.sha1).hexdigest()
    to_sign = f"sha1\n{key_time}\n{hashlib.sha1(string.encode()).hexdigest()}\n"
    return hmac.new(sign_key.encode(), to_sign.encode(), hashlib.sha1).hexdigest()


class FakeCos:
    """``url``: the bucket's domain (COS_ENDPOINT); ``sts_url``: the STS endpoint."""

    def __init__(self, bucket: str = BUCKET, region: str = REGION) -> None:
        self.bucket, self.region = bucket, region
        self.objects: dict[str, StoredObject] = {}
        self.temporary: dict[str, TemporaryKey] = {}
        self.refused: list[tuple[str, str, str]] = []  # (method, key, code)
        self.processed: list[str] = []  # Pic-Operations rules applied
        self.sts_policies: list[dict[str, Any]] = []
        # (status, code) answered to the next object requests instead of serving them (tests).
        self.faults: list[tuple[int, str]] = []
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        cos = web.Application(client_max_size=64 * 1024 * 1024)
        cos.router.add_route("*", "/{key:.+}", self._object)
        sts = web.Application()
        sts.router.add_post("/", self._sts)
        self._cos = ThreadedServer(cos, access_log=False)
        self._sts_server = ThreadedServer(sts, access_log=False)

    @property
    def url(self) -> str:
        return self._cos.url

    @property
    def sts_url(self) -> str:
        return self._sts_server.url + "/"

    def tasks_settings(self) -> dict[str, str]:
        """The COS_* settings of a tasks service that keeps its objects here."""
        return {
            "COS_SECRET_ID": SECRET_ID,
            "COS_SECRET_KEY": SECRET_KEY,
            "COS_REGION": self.region,
            "COS_BUCKET": self.bucket,
            "COS_ENDPOINT": self.url,
            "COS_STS_ENDPOINT": self.sts_url,
        }

    def close(self) -> None:
        self._cos.close()
        self._sts_server.close()

    def __enter__(self) -> FakeCos:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- COS ------------------------------------------------------------------------------------

    async def _object(self, request: web.Request) -> web.StreamResponse:
        key = unquote(request.rel_url.raw_path)[1:]
        body = await request.read()
        try:
            with self._lock:
                fault = self.faults.pop(0) if self.faults else None
            if fault is not None:
                raise CosError(fault[0], fault[1], "injected by the test")
            self._authorize(request, key, body)
            return self._operate(request, key, body)
        except CosError as e:
            with self._lock:
                self.refused.append((request.method, key, e.code))
            return _error(e, request.host + request.path)

    def _authorize(self, request: web.Request, key: str, body: bytes) -> None:
        query = {k.lower(): v for k, v in request.query.items()}
        if "q-signature" in query:
            auth = {k: v for k, v in query.items() if k in _AUTH_PARAMS}
            token = query.get("x-cos-security-token", "")
        else:
            header = request.headers.get("Authorization", "")
            if not header:
                raise CosError(403, "AccessDenied", "anonymous access is not allowed")
            auth = dict(p.split("=", 1) for p in header.split("&") if "=" in p)
            token = request.headers.get("x-cos-security-token", "")
        if auth.get("q-sign-algorithm") != "sha1":
            raise CosError(403, "AccessDenied", "q-sign-algorithm must be sha1")
        ak, key_time = auth.get("q-ak", ""), auth.get("q-key-time", "")
        if auth.get("q-sign-time") != key_time or ";" not in key_time:
            raise CosError(403, "AccessDenied", "bad q-sign-time / q-key-time")
        start, end = (int(x) for x in key_time.split(";"))
        now = int(time.time())
        if not start <= now <= end:
            raise CosError(403, "RequestTimeTooSkewed", "the signature has expired")
        temporary = self.temporary.get(ak)
        if ak == SECRET_ID:
            secret_key = SECRET_KEY
        elif temporary is not None:
            if not hmac.compare_digest(token, temporary.token):
                raise CosError(403, "InvalidAccessKeyId", "missing or wrong security token")
            if now > temporary.expires:
                raise CosError(403, "ExpiredToken", "the temporary key has expired")
            secret_key = temporary.secret_key
        else:
            raise CosError(403, "InvalidAccessKeyId", "unknown SecretId")
        headers = {k.lower(): v for k, v in request.headers.items()}
        signed_headers = []
        for name in filter(None, auth.get("q-header-list", "").split(";")):
            if name == "host":
                value = request.host.rsplit(":", 1)[0] if ":" in request.host else request.host
            elif name in headers:
                value = headers[name]
            else:
                raise CosError(403, "SignatureDoesNotMatch", f"signed header {name} is absent")
            signed_headers.append((name, _q(value)))
        signed_params = []
        for name in filter(None, auth.get("q-url-param-list", "").split(";")):
            if name not in query:
                raise CosError(403, "SignatureDoesNotMatch", f"signed parameter {name} is absent")
            signed_params.append((name, _q(query[name])))
        string = "{}\n{}\n{}\n{}\n".format(
            request.method.lower(),
            "/" + key,
            "&".join(f"{k}={v}" for k, v in sorted(signed_params)),
            "&".join(f"{k}={v}" for k, v in sorted(signed_headers)),
        )
        expected = _sign(secret_key, key_time, string)
        if not hmac.compare_digest(expected, auth.get("q-signature", "")):
            raise CosError(403, "SignatureDoesNotMatch", "the signature does not match")
        if temporary is not None:
            self._check_policy(temporary.policy, _action(request), key, headers, len(body))

    def _check_policy(
        self, policy: dict[str, Any], action: str, key: str, headers: dict[str, str], size: int
    ) -> None:
        resource = f"qcs::cos:{self.region}:uid/{APPID}:{self.bucket}/{key}"
        for statement in policy.get("statement", []):
            if statement.get("effect") != "allow":
                continue
            actions = statement.get("action", [])
            if action not in actions and "name/cos:*" not in actions:
                continue
            if not any(fnmatch.fnmatchcase(resource, r) for r in statement.get("resource", [])):
                continue
            if _conditions_hold(statement.get("condition") or {}, headers, size):
                return
        raise CosError(403, "AccessDenied", f"{action} on {key} is not allowed by the policy")

    def _operate(self, request: web.Request, key: str, body: bytes) -> web.StreamResponse:
        method = request.method
        if method == "PUT":
            source = request.headers.get("x-cos-copy-source")
            if source:
                return self._copy(key, unquote(source.split("/", 1)[1]))
            content_type = request.headers.get("Content-Type", "application/octet-stream")
            meta = {
                k.lower(): v
                for k, v in request.headers.items()
                if k.lower().startswith("x-cos-meta-")
            }
            with self._lock:
                self.objects[key] = StoredObject(body, content_type, meta)
            operations = request.headers.get("Pic-Operations")
            if operations:
                return self._process(key, operations)
            return web.Response(status=200, headers=self._etag(body))
        if method == "POST" and "image_process" in request.query:
            operations = request.headers.get("Pic-Operations")
            if not operations:
                raise CosError(400, "InvalidArgument", "Pic-Operations is required")
            self._stored(key)
            return self._process(key, operations)
        if method in ("GET", "HEAD"):
            stored = self._stored(key)
            headers = {
                "Content-Type": stored.content_type,
                "Content-Length": str(len(stored.data)),
                **self._etag(stored.data),
                **stored.meta,
            }
            if method == "HEAD":
                return web.Response(status=200, headers=headers)
            return web.Response(status=200, body=stored.data, headers=headers)
        if method == "DELETE":
            with self._lock:
                self.objects.pop(key, None)
            return web.Response(status=204)
        raise CosError(405, "MethodNotAllowed", f"{method} is not supported here")

    def _stored(self, key: str) -> StoredObject:
        with self._lock:
            stored = self.objects.get(key)
        if stored is None:
            raise CosError(404, "NoSuchKey", "The specified key does not exist.")
        return stored

    def _copy(self, key: str, source: str) -> web.Response:
        stored = self._stored(source)
        with self._lock:
            self.objects[key] = StoredObject(stored.data, stored.content_type, dict(stored.meta))
        etag = self._etag(stored.data)["ETag"]
        xml = (
            f"<CopyObjectResult><ETag>{etag}</ETag>"
            f"<LastModified>{datetime.now(UTC).isoformat()}</LastModified></CopyObjectResult>"
        )
        return web.Response(body=xml.encode(), content_type="application/xml")

    def _process(self, key: str, operations: str) -> web.Response:
        try:
            spec = json.loads(operations)
            rules = spec["rules"]
            assert isinstance(rules, list) and 1 <= len(rules) <= 5
        except (ValueError, KeyError, TypeError, AssertionError):
            raise CosError(400, "InvalidArgument", "Pic-Operations is not valid JSON") from None
        original = self._stored(key)
        try:
            info = Image.open(io.BytesIO(original.data))
            width, height, fmt = info.width, info.height, (info.format or "").lower()
        except (UnidentifiedImageError, OSError):
            raise CosError(400, "InvalidImageFormat", "the input is not an image") from None
        results = []
        for rule in rules:
            fileid = str(rule.get("fileid", ""))
            if not fileid:
                raise CosError(400, "InvalidArgument", "each rule needs a fileid")
            target = fileid[1:] if fileid.startswith("/") else _sibling(key, fileid)
            data, content_type = _apply(original.data, str(rule.get("rule", "")))
            with self._lock:
                self.objects[target] = StoredObject(data, content_type)
                self.processed.append(str(rule["rule"]))
            out = Image.open(io.BytesIO(data))
            results.append(
                f"<Object><Key>{escape(target)}</Key><Location>{escape(target)}</Location>"
                f"<Format>{content_type.split('/')[1]}</Format><Width>{out.width}</Width>"
                f"<Height>{out.height}</Height><Size>{len(data)}</Size><Quality>100</Quality>"
                f"<ETag>{self._etag(data)['ETag']}</ETag></Object>"
            )
        xml = (
            "<UploadResult><OriginalInfo>"
            f"<Key>{escape(key)}</Key><Location>{escape(key)}</Location>"
            f"<ImageInfo><Format>{fmt}</Format><Width>{width}</Width><Height>{height}</Height>"
            "<Quality>100</Quality><Ave>0xffffff</Ave><Orientation>0</Orientation></ImageInfo>"
            f"<ETag>{self._etag(original.data)['ETag']}</ETag></OriginalInfo>"
            f"<ProcessResults>{''.join(results)}</ProcessResults></UploadResult>"
        )
        return web.Response(body=xml.encode(), content_type="application/xml")

    def _etag(self, data: bytes) -> dict[str, str]:
        return {
            "ETag": f'"{hashlib.md5(data).hexdigest()}"',
            "x-cos-request-id": f"req-{next(self._ids)}",
        }

    # --- STS ------------------------------------------------------------------------------------

    async def _sts(self, request: web.Request) -> web.Response:
        form = {k: str(v) for k, v in (await request.post()).items()}
        signature = form.pop("Signature", "")
        source = "POST" + request.host + "/?" + "&".join(f"{k}={form[k]}" for k in sorted(form))
        expected = base64.b64encode(
            hmac.new(SECRET_KEY.encode(), source.encode(), hashlib.sha1).digest()
        ).decode()
        if form.get("SecretId") != SECRET_ID or not hmac.compare_digest(expected, signature):
            return _sts_error("AuthFailure.SignatureFailure", "the signature does not match")
        if form.get("Action") != "GetFederationToken" or form.get("Version") != "2018-08-13":
            return _sts_error("InvalidAction", "only GetFederationToken is served here")
        if abs(int(form.get("Timestamp", "0")) - time.time()) > 300:
            return _sts_error("AuthFailure.SignatureExpire", "the request has expired")
        duration = int(form.get("DurationSeconds", "1800"))
        if not 0 < duration <= 7200:
            return _sts_error("InvalidParameterValue", "DurationSeconds must be 1..7200")
        try:
            policy = json.loads(unquote(form["Policy"]))
        except (KeyError, ValueError):
            return _sts_error("InvalidParameter.PolicyTooLong", "Policy is not JSON")
        tmp_id = "AKIDtmp" + secrets.token_hex(12)
        key = TemporaryKey(
            secret_key=secrets.token_hex(16),
            token=secrets.token_urlsafe(48),
            policy=policy,
            expires=int(time.time()) + duration,
        )
        with self._lock:
            self.temporary[tmp_id] = key
            self.sts_policies.append(policy)
        expiration = datetime.fromtimestamp(key.expires, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return web.json_response(
            {
                "Response": {
                    "Credentials": {
                        "TmpSecretId": tmp_id,
                        "TmpSecretKey": key.secret_key,
                        "Token": key.token,
                    },
                    "ExpiredTime": key.expires,
                    "Expiration": expiration,
                    "RequestId": f"sts-{next(self._ids)}",
                }
            }
        )


def _action(request: web.Request) -> str:
    if request.method == "PUT":
        return "name/cos:PutObject"
    if request.method == "POST" and "image_process" in request.query:
        return "name/ci:CreateImageProcessJob"
    return {
        "GET": "name/cos:GetObject",
        "HEAD": "name/cos:HeadObject",
        "DELETE": "name/cos:DeleteObject",
        "POST": "name/cos:PostObject",
    }.get(request.method, "name/cos:Unknown")


def _conditions_hold(conditions: dict[str, Any], headers: dict[str, str], size: int) -> bool:
    """Every condition must hold; an operator or key this server does not know denies."""
    values = {"cos:content-length": str(size), "cos:content-type": headers.get("content-type", "")}
    for operator, tests in conditions.items():
        for name, wanted in tests.items():
            if name not in values:
                return False
            have = values[name]
            options = wanted if isinstance(wanted, list) else [wanted]
            if operator == "numeric_less_than_equal":
                ok = any(int(have) <= int(w) for w in options)
            elif operator == "numeric_greater_than_equal":
                ok = any(int(have) >= int(w) for w in options)
            elif operator == "string_equal":
                ok = have in [str(w) for w in options]
            elif operator == "string_like":
                ok = any(fnmatch.fnmatchcase(have, str(w)) for w in options)
            else:
                return False
            if not ok:
                return False
    return True


def _sibling(key: str, fileid: str) -> str:
    directory = key.rsplit("/", 1)[0] + "/" if "/" in key else ""
    return directory + fileid


def _apply(data: bytes, rule: str) -> tuple[bytes, str]:
    """Apply one ``imageMogr2`` rule with Pillow; returns (bytes, content type)."""
    parts = rule.split("/")
    if not parts or parts[0] != "imageMogr2":
        raise CosError(400, "InvalidArgument", f"unsupported rule {rule!r}")
    image: Image.Image = Image.open(io.BytesIO(data))
    image.load()
    box: tuple[int, int] | None = None
    pad, color, fmt = False, "#FFFFFF", (image.format or "png").lower()
    i = 1
    try:
        while i < len(parts):
            op = parts[i]
            if op == "auto-orient":
                image = ImageOps.exif_transpose(image)
                i += 1
                continue
            arg = parts[i + 1]
            if op == "thumbnail":
                w, h = arg.split("x")
                box = (int(w), int(h))
            elif op == "pad":
                pad = arg == "1"
            elif op == "color":
                color = base64.urlsafe_b64decode(arg + "=" * (-len(arg) % 4)).decode()
            elif op == "format":
                fmt = arg
            else:
                raise CosError(400, "InvalidArgument", f"unsupported operation {op!r}")
            i += 2
    except (IndexError, ValueError):
        raise CosError(400, "InvalidArgument", f"malformed rule {rule!r}") from None
    background = Image.new("RGB", image.size, color)
    rgba = image.convert("RGBA")
    background.paste(rgba, mask=rgba.split()[3])
    image = background
    if box is not None:
        image.thumbnail(box)
        if pad:
            canvas = Image.new("RGB", box, color)
            canvas.paste(image, ((box[0] - image.width) // 2, (box[1] - image.height) // 2))
            image = canvas
    formats = {"png": ("PNG", "image/png"), "jpg": ("JPEG", "image/jpeg")}
    formats["jpeg"] = formats["jpg"]
    formats["webp"] = ("WEBP", "image/webp")
    if fmt not in formats:
        raise CosError(400, "InvalidArgument", f"unsupported format {fmt!r}")
    out = io.BytesIO()
    image.save(out, formats[fmt][0])
    return out.getvalue(), formats[fmt][1]


def _error(e: CosError, resource: str) -> web.Response:
    xml = (
        f"<?xml version='1.0' encoding='utf-8' ?><Error><Code>{e.code}</Code>"
        f"<Message>{escape(e.message)}</Message><Resource>{escape(resource)}</Resource>"
        "<RequestId>fake-req</RequestId><TraceId>fake-trace</TraceId></Error>"
    )
    return web.Response(status=e.status, body=xml.encode(), content_type="application/xml")


def _sts_error(code: str, message: str) -> web.Response:
    return web.json_response(
        {"Response": {"Error": {"Code": code, "Message": message}, "RequestId": "sts-error"}}
    )

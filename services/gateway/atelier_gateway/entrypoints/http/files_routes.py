"""Local storage over HTTP: signed downloads (``/files/...``) and policy-checked direct uploads
(``/uploads``). Expired or tampered links and policies answer 403."""

from __future__ import annotations

from aiohttp import BodyPartReader, web

from atelier_gateway.adapters.local_files import FileAccessDenied, FileMissing, UploadPolicy
from atelier_gateway.entrypoints.http.context import container, in_thread
from atelier_gateway.entrypoints.http.contract import Operation, ResponseModel, operation, respond
from atelier_gateway.entrypoints.http.problems import Problem, validation_error

routes = web.RouteTableDef()
_CHUNK = 64 * 1024

# Magic numbers: an upload must really be the image type it claims to be.
_SIGNATURES = {
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/webp": (b"RIFF",),
    "image/gif": (b"GIF87a", b"GIF89a"),
}


def _forbidden(detail: str) -> Problem:
    return Problem(403, "forbidden", "Forbidden", detail)


class StoredUpload(ResponseModel):
    upload_id: str
    key: str
    size: int
    content_type: str
    sha256: str


@operation(
    routes,
    "GET",
    "/files/{key:.+}",
    Operation(
        "Download a stored file by signed URL (query: expires, signature)",
        media_type="image/*",
        auth="none",
        errors=(403,),
        fuzz=False,
    ),
)
async def download(request: web.Request) -> web.StreamResponse:
    c = container(request)
    key = request.match_info["key"]
    try:
        stored = c.files.open_signed(
            key,
            request.query.get("expires", ""),
            request.query.get("signature", ""),
            c.clock.now(),
        )
    except FileAccessDenied as e:
        raise _forbidden("the link is invalid or has expired") from e
    except FileMissing as e:
        raise Problem(404, "not_found", "Not found", "no such file") from e
    return web.FileResponse(
        stored.path,
        headers={
            "Content-Type": stored.content_type,
            "Cache-Control": "private, max-age=300",
            "X-Content-Type-Options": "nosniff",
            "ETag": f'"{stored.sha256}"',
        },
    )


def _looks_like(content_type: str, head: bytes) -> bool:
    magic = _SIGNATURES.get(content_type)
    if magic is None:
        return True
    if content_type == "image/webp" and head[8:12] != b"WEBP":
        return False
    return any(head.startswith(m) for m in magic)


@operation(
    routes,
    "POST",
    "/uploads",
    Operation(
        "Direct upload to local storage (multipart form: the policy fields, then `file`)",
        status=201,
        response=StoredUpload,
        request_media_type="multipart/form-data",
        auth="none",
        errors=(403,),
        fuzz=False,
    ),
)
async def upload(request: web.Request) -> web.Response:
    c = container(request)
    if request.content_type != "multipart/form-data":
        raise Problem(
            415,
            "unsupported_media_type",
            "Unsupported media type",
            "send a multipart/form-data form",
        )
    try:
        policy, data, content_type = await _receive(request)
    except (ValueError, AssertionError, LookupError, RuntimeError) as e:
        # aiohttp's multipart reader: no boundary, a broken part, a bad header or encoding
        # (an unknown Content-Transfer-Encoding is a RuntimeError there).
        raise validation_error("body", f"malformed multipart form: {e}", status=400) from None
    stored = await in_thread(request, c.files.put, policy.key, data, content_type)
    return respond(
        StoredUpload(
            upload_id=policy.key,
            key=policy.key,
            size=stored.size,
            content_type=stored.content_type,
            sha256=stored.sha256,
        ),
        status=201,
    )


async def _receive(request: web.Request) -> tuple[UploadPolicy, bytes, str]:
    """The checked policy, the file and its content type, read from the form."""
    c = container(request)
    reader = await request.multipart()
    fields: dict[str, str] = {}
    while True:
        part = await reader.next()
        if part is None:
            raise validation_error("file", "the form has no file", status=400)
        if not isinstance(part, BodyPartReader):
            raise validation_error("file", "nested multipart is not supported", status=400)
        if part.name != "file":
            if len(fields) > 20:
                raise validation_error(part.name or "form", "too many form fields", status=400)
            fields[part.name or ""] = (await part.read(decode=True))[:4096].decode(
                "utf-8", "replace"
            )
            continue
        # As with S3, the policy fields come before the file: check them before reading it.
        try:
            policy = c.files.check_policy(fields, c.clock.now())
        except FileAccessDenied as e:
            raise _forbidden(f"upload refused: {e}") from e
        content_type = part.headers.get("Content-Type", "application/octet-stream")
        content_type = content_type.split(";")[0].strip().lower()
        if content_type not in policy.content_types:
            raise _forbidden(f"content type {content_type} is not allowed")
        limit = min(policy.max_size, c.settings.upload_max_bytes)
        data = bytearray()
        while chunk := await part.read_chunk(_CHUNK):
            data.extend(chunk)
            if len(data) > limit:
                raise Problem(
                    413,
                    "payload_too_large",
                    "File too large",
                    f"the file must be at most {limit} bytes",
                )
        if not data:
            raise validation_error("file", "the file is empty", status=400)
        if not _looks_like(content_type, bytes(data[:16])):
            raise validation_error("file", f"the file is not {content_type}")
        return policy, bytes(data), content_type

"""Local storage over HTTP: signed downloads (``/files/...``) and policy-checked direct uploads
(``/uploads``). Expired or tampered links and policies answer 403."""

from __future__ import annotations

from aiohttp import BodyPartReader, web

from atelier_gateway.adapters.local_files import FileAccessDenied, FileMissing
from atelier_gateway.entrypoints.http.context import container, in_thread
from atelier_gateway.entrypoints.http.jsonio import json_response
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


@routes.get("/files/{key:.+}")
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


@routes.post("/uploads")
async def upload(request: web.Request) -> web.Response:
    c = container(request)
    if not request.content_type.startswith("multipart/form-data"):
        raise Problem(
            415,
            "unsupported_media_type",
            "Unsupported media type",
            "send a multipart/form-data form",
        )
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
        limit = min(policy.max_size, c.settings.gateway_max_upload_bytes)
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
        stored = await in_thread(request, c.files.put, policy.key, bytes(data), content_type)
        return json_response(
            {
                "upload_id": policy.key,
                "key": policy.key,
                "size": stored.size,
                "content_type": stored.content_type,
                "sha256": stored.sha256,
            },
            status=201,
        )

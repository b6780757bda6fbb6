"""``GET /v1/tasks/{id}/archive``: every result image of a finished task in one zip file,
streamed as it is read from storage (``ImageSource``), never held in memory whole.

The zip is written by the standard library's ``zipfile`` to a sink that is not seekable, so
each entry is stored (images are compressed already) with a data descriptor after its bytes:
nothing needs to be known before an image is read. The answer starts only once the first bytes
of the first image are in hand, so storage that cannot be reached is a clean 503 problem; a
failure after that can only cut the transfer short (the zip then has no central directory and
every reader refuses it).
"""

from __future__ import annotations

import logging
import zipfile
from collections.abc import AsyncIterator, Sequence
from typing import IO, cast

from aiohttp import web

from atelier_gateway.application import task_views as dto
from atelier_gateway.application.ports import ImageSource
from atelier_gateway.entrypoints.http.context import authenticate, container
from atelier_gateway.entrypoints.http.contract import Operation, operation, path_id
from atelier_gateway.entrypoints.http.problems import Problem

routes = web.RouteTableDef()
log = logging.getLogger("atelier.gateway")

_EXTENSIONS = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp", "image/gif": "gif"}


class _Sink:
    """A write-only file for ``zipfile``: collects what it writes until taken."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def write(self, data: bytes) -> int:
        self._parts.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        return None

    def take(self) -> bytes:
        data = b"".join(self._parts)
        self._parts.clear()
        return data


def entry_name(image: dto.Image, task: dto.Task) -> str:
    extension = _EXTENSIONS.get(image.content_type, "bin")
    return f"{task.type}-{task.id}-{image.index + 1:02d}.{extension}"


def _zip_info(image: dto.Image, task: dto.Task) -> zipfile.ZipInfo:
    when = image.created_at or task.finished_at or task.created_at
    stamp = (
        when.timetuple()[:6] if when is not None and when.year >= 1980 else (1980, 1, 1, 0, 0, 0)
    )
    info = zipfile.ZipInfo(entry_name(image, task), date_time=stamp)
    info.compress_type = zipfile.ZIP_STORED
    info.external_attr = 0o644 << 16
    return info


async def _first(chunks: AsyncIterator[bytes]) -> tuple[bytes, AsyncIterator[bytes]]:
    async for chunk in chunks:
        return chunk, chunks
    return b"", chunks


async def _stream(
    response: web.StreamResponse,
    task: dto.Task,
    images: Sequence[dto.Image],
    pending: tuple[bytes, AsyncIterator[bytes]] | None,
    source: ImageSource,
) -> None:
    sink = _Sink()
    with zipfile.ZipFile(cast(IO[bytes], sink), "w", zipfile.ZIP_STORED) as archive:
        for n, image in enumerate(images):
            if n == 0 and pending is not None:
                head, chunks = pending
            else:
                head, chunks = b"", source.chunks(image.url)
            info = _zip_info(image, task)
            with archive.open(info, "w", force_zip64=image.size >= 2**31) as entry:
                if head:
                    entry.write(head)
                async for chunk in chunks:
                    entry.write(chunk)
                    await response.write(sink.take())
            await response.write(sink.take())
    await response.write(sink.take())


@operation(
    routes,
    "GET",
    "/v1/tasks/{task_id}/archive",
    Operation(
        "Every result image of a succeeded task as one zip file, streamed "
        "(409 not_finished until the task has succeeded)",
        media_type="application/zip",
        errors=(409,),
    ),
)
async def task_archive(request: web.Request) -> web.StreamResponse:
    caller = await authenticate(request)
    c = container(request)
    task = await c.tasks.get_task(caller, path_id(request, "task_id"))
    if task.status != "succeeded":
        raise Problem(
            409, "not_finished", "Not finished", "the task has not succeeded (yet): no archive"
        )
    images: Sequence[dto.Image] = sorted(task.images, key=lambda i: i.index)
    pending: tuple[bytes, AsyncIterator[bytes]] | None = None
    if images:
        pending = await _first(c.images.chunks(images[0].url))
    response = web.StreamResponse(
        headers={
            "Content-Type": "application/zip",
            "Content-Disposition": f'attachment; filename="{task.type}-{task.id}.zip"',
            "Cache-Control": "private, no-store",
        }
    )
    await response.prepare(request)
    try:
        await _stream(response, task, images, pending, c.images)
    except Exception:
        # The status line is sent: all that is left is to cut the transfer short, so that the
        # client sees a broken download rather than a complete-looking, truncated zip.
        log.warning("the archive of task %s was cut short", task.id, exc_info=True)
        if request.transport is not None:
            request.transport.close()
        return response
    await response.write_eof()
    return response

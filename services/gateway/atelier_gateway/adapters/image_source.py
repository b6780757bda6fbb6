"""``ImageSource``: a result image's bytes from the signed URL the tasks service gave for it.

- Local storage (the local market): the link points at the gateway's own ``/files/{key}``
  route, signed with the shared storage secret. The object is read from the local store after
  the same signature check the route makes (no HTTP request to ourselves).
- Object storage (S3, COS): the link is a presigned GET, fetched over HTTP and streamed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from urllib.parse import parse_qs, unquote, urlsplit

import aiohttp

from atelier_gateway.adapters.local_files import FileAccessDenied, FileMissing, LocalFileStore
from atelier_ports.clock import Clock
from atelier_ports.problems import Unavailable

CHUNK = 64 * 1024
_FILES = "/files/"


class SignedUrlImages:
    def __init__(self, files: LocalFileStore, clock: Clock, timeout: float = 30.0) -> None:
        self._files = files
        self._clock = clock
        self._timeout = aiohttp.ClientTimeout(total=None, connect=timeout, sock_read=timeout)

    def chunks(self, url: str) -> AsyncIterator[bytes]:
        parts = urlsplit(url)
        query = parse_qs(parts.query)
        if _FILES in parts.path and "expires" in query and "signature" in query:
            key = unquote(parts.path.split(_FILES, 1)[1])
            return self._local(key, query["expires"][0], query["signature"][0])
        if parts.scheme not in ("http", "https"):
            raise Unavailable("the image's link is not one the gateway can follow")
        return self._remote(url)

    async def _local(self, key: str, expires: str, signature: str) -> AsyncIterator[bytes]:
        try:
            stored = self._files.open_signed(key, expires, signature, self._clock.now())
        except (FileAccessDenied, FileMissing) as e:
            raise Unavailable("a result image could not be read from storage") from e
        with stored.path.open("rb") as f:
            while chunk := await asyncio.to_thread(f.read, CHUNK):
                yield chunk

    async def _remote(self, url: str) -> AsyncIterator[bytes]:
        try:
            async with (
                aiohttp.ClientSession(timeout=self._timeout) as session,
                session.get(url, allow_redirects=False) as response,
            ):
                if response.status != 200:
                    raise Unavailable(f"storage answered {response.status} for a result image")
                async for chunk in response.content.iter_chunked(CHUNK):
                    yield chunk
        except (aiohttp.ClientError, TimeoutError) as e:
            raise Unavailable("storage could not be reached for a result image") from e

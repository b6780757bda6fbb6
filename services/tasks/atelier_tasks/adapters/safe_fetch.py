"""Downloading a vendor's output file without becoming an SSRF proxy.

A generation vendor tells us where its output lives; a forged or compromised answer could point
at ``http://127.0.0.1:…``, ``http://169.254.169.254/…`` or any internal host. Every URL (and
every redirect hop) must therefore:

- use http(s) and name a host on the allow-list (exact names or ``*.suffix`` wildcards);
- resolve only to public addresses (loopback, private, link-local, CGNAT, multicast, reserved
  and unspecified ranges are refused, for IPv4 and IPv6) — unless its exact origin
  (``scheme://host:port``) is listed as trusted, which only tests do;
- answer with an image content type and at most ``max_bytes`` (checked on Content-Length and
  again while streaming).

Refusals raise :class:`OutputRefused` (a ProviderRejected: permanent, with a reason a human can
read); network trouble raises ProviderUnavailable. Known limit: the address is checked at
resolution time and httpx resolves again to connect (a DNS-rebinding window); the host
allow-list is the main defence.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable, Sequence
from urllib.parse import urljoin, urlsplit

import httpx

from atelier_ports.errors import ProviderRejected, ProviderUnavailable

IMAGE_TYPES = ("image/png", "image/jpeg", "image/webp")
_REDIRECTS = 3

Resolver = Callable[[str, int], Sequence[str]]


class OutputRefused(ProviderRejected):
    """The output URL or its answer breaks the download rules; never retried."""


def system_resolver(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise ProviderUnavailable(f"cannot resolve output host {host!r}: {exc}") from exc
    return [str(info[4][0]) for info in infos]


def _is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


class SafeOutputFetcher:
    """Implements the tasks ``OutputFetcher`` port: ``fetch(url) -> (bytes, content type)``."""

    def __init__(
        self,
        allowed_hosts: Iterable[str],
        *,
        max_bytes: int = 25 * 1024 * 1024,
        content_types: Sequence[str] = IMAGE_TYPES,
        timeout_seconds: float = 20.0,
        trusted_origins: Iterable[str] = (),
        resolver: Resolver = system_resolver,
    ) -> None:
        self._hosts = tuple(h.strip().lower() for h in allowed_hosts if h.strip())
        self._max_bytes = max_bytes
        self._types = tuple(content_types)
        self._timeout = timeout_seconds
        self._trusted = frozenset(o.strip().rstrip("/").lower() for o in trusted_origins if o)
        self._resolve = resolver

    def check_url(self, url: str) -> None:
        """Raise OutputRefused unless ``url`` may be fetched."""
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        host = (parts.hostname or "").lower()
        if scheme not in ("http", "https") or not host:
            raise OutputRefused(f"output URL refused: {url!r} is not an http(s) URL")
        try:
            port = parts.port or (443 if scheme == "https" else 80)
        except ValueError:
            raise OutputRefused(f"output URL refused: bad port in {url!r}") from None
        if f"{scheme}://{host}:{port}" in self._trusted:
            return
        try:
            literal = ipaddress.ip_address(host)
        except ValueError:
            literal = None
        if literal is not None:
            if not _is_public(str(literal)):
                raise OutputRefused(
                    f"output URL refused: {host} is a private, loopback or reserved address"
                )
            raise OutputRefused(f"output URL refused: host {host} is not on the allow-list")
        if not self._allowed(host):
            raise OutputRefused(f"output URL refused: host {host} is not on the allow-list")
        private = [a for a in self._resolve(host, port) if not _is_public(a)]
        if private:
            raise OutputRefused(
                f"output URL refused: {host} resolves to a private, loopback or reserved "
                f"address ({private[0]})"
            )

    def _allowed(self, host: str) -> bool:
        for pattern in self._hosts:
            if pattern.startswith("*."):
                if host.endswith(pattern[1:]) and host != pattern[2:]:
                    return True
            elif host == pattern:
                return True
        return False

    def fetch(self, url: str) -> tuple[bytes, str]:
        try:
            with httpx.Client(timeout=self._timeout, follow_redirects=False) as client:
                for _ in range(_REDIRECTS + 1):
                    self.check_url(url)
                    with client.stream("GET", url) as response:
                        if response.is_redirect and "location" in response.headers:
                            url = urljoin(url, response.headers["location"])
                            continue
                        return self._read(url, response)
        except httpx.HTTPError as exc:
            raise ProviderUnavailable(f"downloading the output failed: {exc}") from exc
        raise OutputRefused(f"output URL refused: more than {_REDIRECTS} redirects")

    def _read(self, url: str, response: httpx.Response) -> tuple[bytes, str]:
        if response.status_code >= 500 or response.status_code == 429:
            raise ProviderUnavailable(f"output download answered {response.status_code}")
        if response.status_code != 200:
            raise OutputRefused(f"output download answered {response.status_code} for {url}")
        content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type not in self._types:
            raise OutputRefused(f"output refused: content type {content_type or 'none'!r}")
        declared = response.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self._max_bytes:
            raise OutputRefused(f"output refused: larger than {self._max_bytes} bytes")
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > self._max_bytes:
                raise OutputRefused(f"output refused: larger than {self._max_bytes} bytes")
            chunks.append(chunk)
        return b"".join(chunks), content_type

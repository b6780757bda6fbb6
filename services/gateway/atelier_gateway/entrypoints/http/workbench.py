"""The browser workbench (F28) at ``/``: one HTML page and its ES modules and stylesheet, shipped
inside this package (``static/``) and served from memory.

The page is built once per language; the assets are read at start, named by a digest of all of
them (``/assets/<digest>/app.js``) and cached by browsers for a year, so a new release is a new
URL and the page itself is revalidated (``no-cache``). Everything is sent with a Content Security
Policy that allows scripts and styles from this origin only: no inline script, no ``eval``.
"""

from __future__ import annotations

import gzip
import hashlib
import html
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from aiohttp import web

from atelier_gateway.entrypoints.http.context import CONTAINER, container
from atelier_gateway.entrypoints.http.i18n import Language, preferred_language

routes = web.RouteTableDef()

STATIC_DIR = Path(__file__).parent / "static"
ASSETS_PREFIX = "/assets"
_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
# Scripts and styles from this origin only; images and uploads may go to the storage's https
# origin (S3, COS) and to the gateway's public URL (local storage's signed links use it, and the
# page may have been opened under another name); nothing may frame the page.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'{public} data: blob: "
    "https:; connect-src 'self'{public} https:; font-src 'self'; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
}
_IMMUTABLE = "public, max-age=31536000, immutable"
_NOSCRIPT = {
    "en": "The Atelier workbench needs JavaScript. The API is documented at /docs.",
    "zh": "Atelier 工作台需要启用 JavaScript。API 文档见 /docs。",
}
_SKIP = {"en": "Skip to content", "zh": "跳到正文"}


@dataclass(frozen=True)
class Asset:
    body: bytes
    gzipped: bytes
    content_type: str
    etag: str


@dataclass(frozen=True)
class Workbench:
    version: str
    assets: dict[str, Asset]
    template: str
    headers: dict[str, str]

    @property
    def prefix(self) -> str:
        return f"{ASSETS_PREFIX}/{self.version}"

    def page(self, language: Language, market: str) -> str:
        return (
            self.template.replace("{html_lang}", "zh-CN" if language == "zh" else "en")
            .replace("{lang}", language)
            .replace("{market}", html.escape(market, quote=True))
            .replace("{assets}", self.prefix)
            .replace("{skip}", _SKIP[language])
            .replace("{noscript}", _NOSCRIPT[language])
        )


def content_security_policy(public_url: str) -> str:
    parts = urlsplit(public_url)
    origin = f"{parts.scheme}://{parts.netloc}" if parts.scheme in ("http", "https") else ""
    return CONTENT_SECURITY_POLICY.format(public=f" {origin}" if origin else "")


def load_workbench(directory: Path = STATIC_DIR, public_url: str = "") -> Workbench:
    """Every asset under ``directory`` (JavaScript, CSS, SVG), and the page template."""
    assets: dict[str, Asset] = {}
    digest = hashlib.sha256()
    for path in sorted(directory.rglob("*")):
        content_type = _TYPES.get(path.suffix)
        if content_type is None or not path.is_file():
            continue
        name = path.relative_to(directory).as_posix()
        body = path.read_bytes()
        digest.update(name.encode() + b"\0" + body + b"\0")
        etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
        assets[name] = Asset(body, gzip.compress(body, 9, mtime=0), content_type, etag)
    template = (directory / "index.html").read_text(encoding="utf-8")
    headers = {"Content-Security-Policy": content_security_policy(public_url), **SECURITY_HEADERS}
    return Workbench(digest.hexdigest()[:16], assets, template, headers)


_WORKBENCH = web.AppKey("workbench", Workbench)


def install(app: web.Application) -> None:
    """Read the assets once, when the application is made."""
    app[_WORKBENCH] = load_workbench(public_url=app[CONTAINER].settings.gateway_public_url)


def _workbench(request: web.Request) -> Workbench:
    return request.app[_WORKBENCH]


def page_language(accept_language: str | None, market: str) -> Language:
    """The page's first language: Chinese in the cn market, else what the browser asks for."""
    if market == "cn":
        return "zh"
    return preferred_language(accept_language) if accept_language else "en"


@routes.get("/")
async def index(request: web.Request) -> web.Response:
    market = container(request).settings.market
    language = page_language(request.headers.get("Accept-Language"), market)
    bench = _workbench(request)
    return web.Response(
        text=bench.page(language, market),
        content_type="text/html",
        headers={
            **bench.headers,
            "Cache-Control": "no-cache",
            "Vary": "Accept-Language",
            "Content-Language": "zh-CN" if language == "zh" else "en",
        },
    )


@routes.get(ASSETS_PREFIX + "/{version}/{name:.+}")
async def asset(request: web.Request) -> web.Response:
    bench = _workbench(request)
    found = bench.assets.get(request.match_info["name"])
    if request.match_info["version"] != bench.version or found is None:
        raise web.HTTPNotFound()
    headers = {
        **bench.headers,
        "Cache-Control": _IMMUTABLE,
        "ETag": found.etag,
        "Vary": "Accept-Encoding",
    }
    if request.headers.get("If-None-Match") == found.etag:
        return web.Response(status=304, headers=headers)
    body = found.body
    if "gzip" in request.headers.get("Accept-Encoding", "").lower():
        body = found.gzipped
        headers["Content-Encoding"] = "gzip"
    headers["Content-Type"] = found.content_type
    return web.Response(body=body, headers=headers)

"""The workbench's page and assets as the gateway serves them: languages, caching, security
headers, and the rules its scripts keep (text only, no token in storage)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from atelier_gateway.entrypoints.http.workbench import STATIC_DIR, load_workbench, page_language
from tests.gateway.conftest import Api


def _assets(page: str) -> list[str]:
    return re.findall(r'(?:src|href)="(/assets/[^"]+)"', page)


def test_the_page_links_its_assets_by_digest_and_every_one_is_served_with_caching(
    api: Api,
) -> None:
    r = api.http.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert r.headers["cache-control"] == "no-cache"
    assert "Accept-Language" in r.headers["vary"]
    version = load_workbench().version
    linked = _assets(r.text)
    assert f"/assets/{version}/app.js" in linked and f"/assets/{version}/app.css" in linked
    for href in linked:
        asset = api.http.get(href)
        assert asset.status_code == 200, href
        assert asset.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert asset.headers["x-content-type-options"] == "nosniff"
        again = api.http.get(href, headers={"If-None-Match": asset.headers["etag"]})
        assert again.status_code == 304
    js = api.http.get(f"/assets/{version}/pages/task.js", headers={"Accept-Encoding": "gzip"})
    assert js.headers["content-type"].startswith("text/javascript")
    assert js.headers["content-encoding"] == "gzip"
    # Another version, an unknown file and a way out of the directory are all not found.
    assert api.http.get("/assets/0000000000000000/app.js").status_code == 404
    assert api.http.get(f"/assets/{version}/nope.js").status_code == 404
    assert api.http.get(f"/assets/{version}/../workbench.py").status_code == 404
    assert api.http.get(f"/assets/{version}/index.html").status_code == 404


def test_the_page_allows_no_inline_script_and_is_never_framed(api: Api) -> None:
    r = api.http.get("/")
    csp = r.headers["content-security-policy"]
    directives = {d.split()[0]: d.split()[1:] for d in csp.split(";") if d.strip()}
    assert directives["script-src"] == ["'self'"]
    assert directives["style-src"] == ["'self'"]
    assert directives["frame-ancestors"] == ["'none'"]
    assert directives["object-src"] == ["'none'"]
    assert "unsafe" not in csp
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["x-content-type-options"] == "nosniff"
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", r.text, re.S)
    assert scripts and all('src="/assets/' in attrs and not body for attrs, body in scripts)
    assert " style=" not in r.text and "<style" not in r.text
    for href in ("/docs", "/v1/openapi.json", "/healthz", "/readyz", "/metrics"):
        assert f'href="{href}"' in r.text


@pytest.mark.parametrize(
    ("accept", "market", "expected"),
    [
        (None, "local", "en"),
        ("zh-CN,zh;q=0.9,en;q=0.5", "local", "zh"),
        ("en-GB,en;q=0.9", "global", "en"),
        (None, "cn", "zh"),
        ("fr-FR", "local", "en"),
    ],
)
def test_the_first_language_follows_the_browser_and_the_cn_market(
    accept: str | None, market: str, expected: str
) -> None:
    assert page_language(accept, market) == expected


def test_the_page_says_its_language(api: Api) -> None:
    zh = api.http.get("/", headers={"Accept-Language": "zh-CN"})
    assert 'data-lang="zh"' in zh.text and 'lang="zh-CN"' in zh.text
    assert zh.headers["content-language"] == "zh-CN"
    en = api.http.get("/", headers={"Accept-Language": "en-US"})
    assert 'data-lang="en"' in en.text


def test_images_and_uploads_may_use_the_public_url_and_https_storage() -> None:
    from atelier_gateway.entrypoints.http.workbench import content_security_policy

    csp = content_security_policy("http://127.0.0.1:8080/some/path")
    directives = {d.split()[0]: d.split()[1:] for d in csp.split(";") if d.strip()}
    assert directives["connect-src"] == ["'self'", "http://127.0.0.1:8080", "https:"]
    assert "http://127.0.0.1:8080" in directives["img-src"]
    assert "'self' https:" in content_security_policy("")


def _scripts() -> dict[str, str]:
    return {
        p.relative_to(STATIC_DIR).as_posix(): p.read_text(encoding="utf-8")
        for p in STATIC_DIR.rglob("*.js")
    }


def test_scripts_write_text_never_html_and_keep_no_token_in_storage() -> None:
    scripts = _scripts()
    assert "app.js" in scripts and "api.js" in scripts
    for name, source in scripts.items():
        for banned in (
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "localStorage",
            "sessionStorage",
            "eval(",
            "new Function",
        ):
            assert banned not in source, f"{name} uses {banned}"


def test_every_module_is_shipped_and_imported_from_this_origin() -> None:
    scripts = _scripts()
    for name, source in scripts.items():
        for target in re.findall(r'from "([^"]+)"', source):
            assert target.startswith("."), f"{name} imports {target}"  # no CDN, no bare names
            resolved = (Path(STATIC_DIR / name).parent / target).resolve()
            assert resolved.is_file(), f"{name} imports a missing {target}"


def test_the_wheel_ships_the_workbench() -> None:
    """hatchling puts every file under a package into the wheel; the assets are under one, and
    not git-ignored (a non-editable install has them)."""
    import subprocess

    root = Path(__file__).resolve().parents[3]
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", str(STATIC_DIR / "app.js")], cwd=root, check=False
    )
    assert ignored.returncode == 1  # not ignored
    assert (STATIC_DIR / "index.html").is_file()
    assert STATIC_DIR.parent.name == "http"  # inside atelier_gateway, a wheel package


def _words(language: str) -> set[str]:
    source = (STATIC_DIR / "i18n.js").read_text(encoding="utf-8")
    block = source.split(f"const {language} = {{", 1)[1].split("\n};", 1)[0]
    return set(re.findall(r'(?:^|[\s,{])([a-z][a-z0-9_]*):\s*"', block, re.MULTILINE))


def test_every_word_is_in_english_and_chinese_and_every_word_used_exists() -> None:
    from typing import get_args

    from atelier_gateway.application.task_views import ModerationSubject, ModerationVerdict

    en, zh = _words("EN"), _words("ZH")
    assert len(en) > 200
    assert en == zh, f"only English: {sorted(en - zh)}; only Chinese: {sorted(zh - en)}"
    used = {k for source in _scripts().values() for k in re.findall(r'\bt\("([a-z0-9_]+)"', source)}
    assert used <= en, f"no words for {sorted(used - en)}"
    # the words the pages build from the API's values (t(`subj_${subject}`), badge(verdict))
    built = {f"subj_{s}" for s in get_args(ModerationSubject)}
    built |= {f"st_{v}" for v in get_args(ModerationVerdict)}
    assert built <= en, f"no words for {sorted(built - en)}"

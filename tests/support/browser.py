"""A real browser for the workbench tests: Debian's Chromium driven by Selenium through Debian's
chromedriver (never Selenium Manager, which would download one). Where none is installed the
tests that need it are skipped and the run ends with a loud line (tests/conftest.py)."""

from __future__ import annotations

import base64
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

BROWSER_STATUS: dict[str, str] = {}
WAIT = 30.0


def find_chromium() -> tuple[str, str] | str:
    """(browser, driver) paths, or why there are none."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = "/usr/bin/chromedriver" if Path("/usr/bin/chromedriver").exists() else None
    driver = driver or shutil.which("chromedriver")
    if browser is None or driver is None:
        missing = [n for n, p in (("chromium", browser), ("chromium-driver", driver)) if p is None]
        return f"{' and '.join(missing)} not installed (apt-get install chromium chromium-driver)"
    return browser, driver


def start_chromium(browser: str, driver: str, downloads: Path, lang: str = "en-US") -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-dev-shm-usage",
        "--window-size=1280,900",
        f"--lang={lang}",
    ):
        options.add_argument(arg)
    options.add_experimental_option(
        "prefs",
        {
            "download.default_directory": str(downloads),
            "download.prompt_for_download": False,
            "intl.accept_languages": lang,
        },
    )
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    web_driver = webdriver.Chrome(options=options, service=Service(executable_path=driver))
    web_driver.execute_cdp_cmd(
        "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)}
    )
    return web_driver


@pytest.fixture
def chromium() -> tuple[str, str]:
    found = find_chromium()
    if isinstance(found, str):
        BROWSER_STATUS["why_not"] = found
        pytest.skip(f"NO CHROMIUM — the workbench browser test was skipped: {found}")
    return found


@dataclass
class Person:
    """The browser, and what it is checked for after each step."""

    driver: Any
    base: str
    downloads: Path
    artifacts: Path
    shots: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)

    def go(self, hash_path: str) -> None:
        self.driver.get(f"{self.base}/#{hash_path}")

    def wait(self, condition: Callable[[Any], Any], timeout: float = WAIT) -> Any:
        """Until ``condition`` is truthy; an element the page redrew meanwhile (stale) is
        looked up again rather than failing the wait."""
        from selenium.common.exceptions import StaleElementReferenceException
        from selenium.webdriver.support.ui import WebDriverWait

        return WebDriverWait(
            self.driver, timeout, ignored_exceptions=(StaleElementReferenceException,)
        ).until(condition)

    def find(self, css: str) -> Any:
        return self.wait(lambda d: first_displayed(d, css))

    def act(self, css: str, action: Callable[[Any], Any]) -> Any:
        """Find the element and act on it, both again if the page redraws it in between (the
        workbench re-renders views as answers arrive)."""

        def attempt(d: Any) -> tuple[Any] | bool:
            el = first_displayed(d, css)
            return (action(el),) if el else False

        return self.wait(attempt)[0]

    def text(self, css: str) -> str:
        return str(self.act(css, lambda el: el.text))

    def wait_text(self, css: str, words: str) -> None:
        """Until an element shows the words (read in the page: no stale element while the page
        redraws)."""
        script = (
            "return Array.from(document.querySelectorAll(arguments[0]))"
            ".some(e => e.innerText.includes(arguments[1]));"
        )
        self.wait(lambda d: d.execute_script(script, css, words))

    def attr(self, css: str, name: str) -> str | None:
        """An attribute read in the page (no stale element while the page redraws)."""
        script = (
            "const e = document.querySelector(arguments[0]); "
            "return e && e.getAttribute(arguments[1]);"
        )
        value = self.driver.execute_script(script, css, name)
        return None if value is None else str(value)

    def wait_attr(self, css: str, name: str, value: str) -> None:
        self.wait(lambda _d: self.attr(css, name) == value)

    def fill(self, css: str, value: str) -> None:
        self.act(css, lambda el: (el.clear(), el.send_keys(value)))

    def click(self, css: str) -> None:
        self.act(css, lambda el: el.click())

    def shot(self, name: str, expected: tuple[str, ...] = ()) -> None:
        """A screenshot, and the console read: a page with an error in it fails the test
        (``expected``: the browser's lines for answers the page asked for and handles)."""
        self.check_console(name, expected)
        path = self.artifacts / f"{len(self.shots) + 1:02d}-{name}.png"
        # The whole page, not only the window (at most 2400 px tall).
        size = self.driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
        clip = {
            "x": 0,
            "y": 0,
            "width": size["width"],
            "height": min(size["height"], 2400),
            "scale": 1,
        }
        shot = self.driver.execute_cdp_cmd(
            "Page.captureScreenshot",
            {"format": "png", "captureBeyondViewport": True, "clip": clip},
        )
        path.write_bytes(base64.b64decode(shot["data"]))
        self.shots.append(path.name)

    def check_console(self, where: str, expected: tuple[str, ...] = ()) -> None:
        entries = self.driver.get_log("browser")
        errors = [e["message"] for e in entries if e["level"] == "SEVERE"]
        errors = [m for m in errors if not any(x in m for x in expected)]
        self.console.extend(f"{where}: {m}" for m in errors)
        assert not errors, f"console errors on {where}: {errors}"


def first_displayed(driver: Any, css: str) -> Any:
    for el in driver.find_elements("css selector", css):
        if el.is_displayed():
            return el
    return False

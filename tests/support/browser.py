"""A real browser for the workbench tests: Debian's Chromium driven by Selenium through Debian's
chromedriver (never Selenium Manager, which would download one). Where none is installed the
tests that need it are skipped and the run ends with a loud line (tests/conftest.py)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

BROWSER_STATUS: dict[str, str] = {}


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

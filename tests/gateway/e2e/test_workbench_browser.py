"""The web workbench in a real browser (Chromium + Selenium) on the real stack: gateway, billing,
tasks with its worker, local market. It walks the loop as a person would and saves a screenshot
at each step under ``test-artifacts/workbench/`` (git-ignored); the browser's console must stay
free of errors on every page."""

from __future__ import annotations

import io
import json
import shutil
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.gateway.conftest import PASSWORD, Stack, _stack
from tests.support.browser import Person, chromium, start_chromium
from tests.support.moderation_images import FLAGGED_PNG

ROOT = Path(__file__).resolve().parents[3]
ARTIFACTS = ROOT / "test-artifacts" / "workbench"
# Chromium logs every 4xx answer; this 422 (a refused prompt) is the one the page is showing.
REFUSED = "/v1/tasks - Failed to load resource: the server responded with a status of 422"
__all__ = ["chromium"]  # a fixture


@pytest.fixture
def tasks_env() -> dict[str, str]:
    # The local generator takes a moment, so the task page is seen following a running task.
    return {"LOCAL_GENERATOR_DELAY_MS": "1500"}


@pytest.fixture
def artifacts() -> Path:
    return ARTIFACTS


@pytest.fixture
def web_stack(tmp_path: Path, tasks_env: dict[str, str]) -> Iterator[Stack]:
    with _stack(
        f"sqlite:///{tmp_path / 'gateway.db'}",
        f"sqlite:///{tmp_path / 'billing.db'}",
        f"sqlite:///{tmp_path / 'tasks.db'}",
        tmp_path,
        tasks_env=tasks_env,
    ) as stack:
        yield stack


def _photo(path: Path) -> Path:
    image = Image.new("RGB", (480, 360), (235, 235, 235))
    for x in range(140, 340):
        for y in range(90, 270):
            image.putpixel((x, y), (200, 60, 40))
    image.save(path, "JPEG")
    return path


@pytest.fixture
def person(
    chromium: tuple[str, str], web_stack: Stack, tmp_path: Path, artifacts: Path
) -> Iterator[Person]:
    shutil.rmtree(artifacts, ignore_errors=True)
    artifacts.mkdir(parents=True)
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    driver = start_chromium(*chromium, downloads)
    try:
        yield Person(driver, web_stack.gateway.url, downloads, artifacts)
    finally:
        driver.quit()


def _downloaded(person: Person, suffix: str) -> Callable[[Any], Path | bool]:
    def found(_driver: Any) -> Path | bool:
        for p in person.downloads.iterdir():
            partial = p.name.endswith((".crdownload", ".tmp"))
            if not partial and p.name.endswith(suffix) and p.stat().st_size > 0:
                return p
        return False

    return found


def test_the_whole_loop_in_a_browser(person: Person, web_stack: Stack, tmp_path: Path) -> None:
    email = "mia@example.com"
    p = person

    # Sign up: the dashboard shows the 10 sign-up credits.
    p.driver.get(p.base + "/")
    p.find("#login-form")
    # How soon the first page is usable, recorded (not asserted: speed is for benchmarks).
    timing = p.driver.execute_script(
        "const n = performance.getEntriesByType('navigation')[0];"
        "return {dom_content_loaded_ms: n.domContentLoadedEventEnd, load_ms: n.loadEventEnd,"
        " form_shown_by_ms: performance.now(),"
        " transferred_bytes: performance.getEntriesByType('resource')"
        ".reduce((sum, r) => sum + r.transferSize, n.transferSize)};"
    )
    (ARTIFACTS / "first-page.json").write_text(json.dumps(timing, indent=2) + "\n")
    p.shot("login")
    # The keyboard: the first Tab reaches "Skip to content", which moves the focus to the page.
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    ActionChains(p.driver).send_keys(Keys.TAB).perform()
    assert p.driver.execute_script("return document.activeElement.className") == "skip"
    ActionChains(p.driver).send_keys(Keys.ENTER).perform()
    p.wait(lambda d: d.execute_script("return document.activeElement.id") == "main")
    assert p.driver.current_url.endswith("#/login")
    p.click("a[href^='#/signup']")
    p.fill("#signup-form input[name=name]", "Mia")
    p.fill("#signup-form input[name=email]", email)
    p.fill("#signup-form input[name=password]", PASSWORD)
    p.shot("signup")
    p.click("#signup-submit")
    p.wait_text("#available", "10")
    p.find("#stats")
    p.shot("dashboard-new")

    # Buy the membership through the sandbox checkout, and come back to the order.
    p.go("/buy")
    p.find("#item-plan_monthly")
    p.shot("buy")
    p.click("#item-plan_monthly button")
    p.wait(lambda d: "/sandbox/checkout/" in d.current_url)
    p.shot("sandbox-checkout")
    p.click("button[value=paid]")
    # Back in the workbench, the session is restored from the HttpOnly refresh cookie.
    p.click("a[href^='/#/orders/']")
    p.wait_attr("#order-status", "data-status", "paid")
    p.shot("order-paid")
    p.go("/")
    p.wait_text("#quota", "300")
    assert p.text("#available") == "310"
    p.shot("dashboard-member")

    # Upload a photo and clean it: the task page follows the task live.
    p.go("/create")
    p.click("input[name=type][value=basic_clean]")
    p.driver.find_element("css selector", "#photo").send_keys(str(_photo(tmp_path / "shoe.jpg")))
    p.wait_attr("#drop", "data-uploaded", "true")
    assert p.act("#upload-progress", lambda el: el.get_attribute("value")) == "100"
    p.shot("create-uploaded")
    p.click("#create-submit")
    p.wait(lambda d: "#/tasks/" in d.current_url)
    p.find("#task-status")
    first = p.attr("#task-status", "data-status")
    assert first in ("pending", "processing"), first  # seen before it finished
    p.shot("task-running")
    p.wait_attr("#task-status", "data-status", "succeeded")
    p.find("#results img")
    p.shot("task-succeeded")

    # Download one result, and all of them as a zip.
    p.click("#results a.download")
    image = p.wait(_downloaded(p, ""))
    assert Image.open(image).size[0] > 0
    for old in p.downloads.iterdir():
        old.unlink()
    p.click("#download-all")
    archive = p.wait(_downloaded(p, ".zip"))
    with zipfile.ZipFile(io.BytesIO(archive.read_bytes())) as z:
        assert len(z.namelist()) == 1
        assert Image.open(io.BytesIO(z.read(z.namelist()[0]))).size[0] > 0

    # A task made to fail shows its reason, and the ledger shows the credit returned.
    p.go("/create")
    p.click("input[name=type][value=text_to_image]")
    p.fill("#prompt", "a red chair in a white room")
    p.click("#sandbox-fail")
    p.click("#create-submit")
    p.wait(lambda d: d.find_elements("css selector", "#failure"))
    assert "returned" in p.text("#failure")
    p.shot("task-failed")
    p.go("/ledger")
    p.find("#ledger")
    assert "release" in p.text("#ledger")
    p.shot("ledger")

    # A prompt the local moderation refuses (a packaged blocked term): nothing is created.
    p.go("/create")
    p.click("input[name=type][value=text_to_image]")
    p.fill("#prompt", "a p0rn poster")
    p.click("#create-submit")
    p.wait_text("#create-status", "content review refused")
    assert "#/create" in p.driver.current_url
    p.shot("create-refused", expected=(REFUSED,))
    # A photo the local moderation refuses (NudeNet flags it): the task fails, the credit back.
    p.go("/create")
    p.click("input[name=type][value=basic_clean]")
    p.driver.find_element("css selector", "#photo").send_keys(str(FLAGGED_PNG))
    p.wait_attr("#drop", "data-uploaded", "true")
    p.click("#create-submit")
    p.wait(lambda d: "#/tasks/" in d.current_url)
    p.wait_attr("#task-status", "data-status", "failed")
    assert "refused" in p.text("#failure"), p.text("#failure")
    p.shot("task-refused-photo")

    # The gallery shows the images; history filters by status.
    p.go("/gallery")
    assert p.wait(lambda d: d.find_elements("css selector", "#gallery img"))
    p.shot("gallery")
    p.click("#gallery button.thumb")
    p.wait(lambda d: d.execute_script("return document.querySelector('#viewer img').naturalWidth"))
    assert p.attr("#viewer", "open") is not None
    p.shot("gallery-full-size")
    p.click("#viewer button")
    p.wait(lambda _d: p.attr("#viewer", "open") is None)
    p.go("/")
    p.find("#chart-months")
    p.find("#chart-types")
    p.shot("dashboard-stats")
    p.go("/history?status=failed")
    p.wait_text("main table", "failed")
    p.shot("history-failed")

    # Orders with their status; the profile.
    p.go("/orders")
    p.wait_text("main table", "paid")
    p.shot("orders")
    p.go("/profile")
    p.fill("#profile-form input[name=name]", "Mia Chen")
    p.click("#profile-save")
    p.wait_text("#who", "Mia Chen")
    p.shot("profile")

    # At phone width nothing spills sideways.
    p.driver.set_window_size(390, 844)
    p.go("/")
    p.find("#available")
    assert p.driver.execute_script(
        "return document.documentElement.scrollWidth <= window.innerWidth + 1"
    )
    p.shot("phone-dashboard")
    p.driver.set_window_size(1280, 900)

    # The Chinese UI.
    from selenium.webdriver.support.ui import Select

    p.act("#lang", lambda el: Select(el).select_by_value("zh"))
    p.wait_text("nav.nav", "概览")
    p.wait_text("h1", "概览")
    p.shot("dashboard-zh")
    p.act("#lang", lambda el: Select(el).select_by_value("en"))
    p.wait_text("nav.nav", "Dashboard")

    # Log out and back in.
    p.click("#logout")
    p.find("#login-form")
    p.fill("#login-form input[name=email]", email)
    p.fill("#login-form input[name=password]", PASSWORD)
    p.click("#login-submit")
    p.find("#available")
    p.shot("logged-in-again")

    # An admin finds the user, reads the timeline, refunds the membership order, adjusts the
    # credits with a reason; the user's dashboard shows the result.
    web_stack.api.signup("root@example.com", name="Root")
    web_stack.gateway.container.promote_admin("root@example.com")
    p.click("#logout")
    p.fill("#login-form input[name=email]", "root@example.com")
    p.fill("#login-form input[name=password]", PASSWORD)
    p.click("#login-submit")
    p.click("a[href='#/admin']")
    p.fill("#user-query", "mia@")
    p.click("#user-search button[type=submit]")
    p.click("a.user-link")
    p.wait_text("#timeline", "release")  # the failed task's credit, back
    p.wait_text("#timeline", "payment")
    p.shot("admin-user")
    p.click("button[data-order]")
    p.wait_text("main", "Refund requested")
    p.driver.refresh()  # a reload: the session comes back from the refresh cookie
    p.wait_text("#timeline", "refund")
    after_refund = int(p.text("#admin-balance"))
    p.fill("#adjust-amount", "5")
    p.fill("#adjust-reason", "Sorry for the wait")
    p.click("#adjust-submit")
    p.wait_text("#admin-balance", str(after_refund + 5))
    p.wait_text("#timeline", "Sorry for the wait")
    p.shot("admin-adjusted")
    p.click("#user-tasks")
    p.wait_text("main table", "succeeded")
    p.shot("admin-user-tasks")
    p.go("/admin/tasks?status=failed")
    p.wait_text("main table", "failed")
    p.shot("admin-tasks-failed")
    # The moderation review: the refused prompt with its label, overturned after a confirmation
    # (a refused prompt has no task: its overturn is only recorded).
    p.click("a[href='#/admin/moderation']")
    p.wait_text("#moderation", "blocked_term:sexual")
    assert "Prompt" in p.text("#moderation") and "local" in p.text("#moderation")
    p.shot("admin-moderation")
    # newest first: the photo (its task re-run at no charge), then the prompt (only recorded)
    assert "Input photo" in p.text("#moderation tbody tr:first-child")
    p.click("#moderation .overturn button")
    p.wait_text("#moderation", "Overturn this rejection?")
    p.click("#moderation .overturn button.confirm")
    p.wait_text("#moderation tbody tr:first-child", "re-run task")
    p.click("#moderation .overturn button")
    p.click("#moderation .overturn button.confirm")
    p.wait(lambda d: len(d.find_elements("css selector", "#moderation .overturned")) == 2)
    assert not p.driver.find_elements("css selector", "#moderation .overturn button")
    p.shot("admin-moderation-overturned")
    p.act("#moderation-verdict", lambda el: Select(el).select_by_value("all"))
    p.wait(lambda d: "verdict=all" in d.current_url)
    p.wait_text("#moderation", "Overturned")
    p.click("#logout")
    p.fill("#login-form input[name=email]", email)
    p.fill("#login-form input[name=password]", PASSWORD)
    p.click("#login-submit")
    p.wait_text("#available", str(after_refund + 5))
    p.shot("dashboard-adjusted")


@pytest.mark.parametrize(
    ("tasks_env", "artifacts"),
    [({"TASKS_COST_MODEL_POSE12": "20"}, ARTIFACTS.parent / "workbench-credits")],
)
def test_not_enough_credits_says_so_and_links_to_buy(person: Person, tmp_path: Path) -> None:
    p = person
    p.driver.get(p.base + "/#/signup")
    p.fill("#signup-form input[name=email]", "ned@example.com")
    p.fill("#signup-form input[name=password]", PASSWORD)
    p.click("#signup-submit")
    p.wait_text("#available", "10")
    p.go("/create")
    p.click("input[name=type][value=model_pose12]")
    p.wait_text("#cost", "no endpoint")  # the API tells a cost only on a created task
    p.driver.find_element("css selector", "#photo").send_keys(str(_photo(tmp_path / "coat.jpg")))
    p.wait_attr("#drop", "data-uploaded", "true")
    p.click("#create-submit")
    p.wait_text("#create-status", "Not enough credits")
    # Chromium logs every 4xx answer; this 402 is the one the page is showing.
    p.shot(
        "not-enough-credits",
        expected=(
            "/v1/tasks - Failed to load resource: the server responded with a status of 402",
        ),
    )
    p.click("#buy-link")
    p.find("#item-pack_100")
    assert p.driver.current_url.endswith("#/buy")

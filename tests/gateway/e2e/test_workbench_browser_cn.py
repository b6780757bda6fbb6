"""The workbench in the cn market, in a real browser: Chinese by default, log-in by phone and SMS
code (the real Tencent Cloud SMS SDK against the local TC3-checking endpoint), the membership paid
by WeChat Pay — the order's QR code, then "I have paid" (the real wechatpayv3 SDK against the local
WeChat Pay API v3 server). Screenshots under ``test-artifacts/workbench-cn/``."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.gateway.harness import (
    RunningGateway,
    gateway_settings,
    reserve_socket,
    start_gateway,
    start_tasks_server,
)
from tests.support.billing_server import start_billing_server
from tests.support.browser import Person, chromium, start_chromium
from tests.support.tencent_sms_server import FakeTencentSms
from tests.support.wechatpay_server import (
    WeChatPayServer,
)

ROOT = Path(__file__).resolve().parents[3]
ARTIFACTS = ROOT / "test-artifacts" / "workbench-cn"
__all__ = ["chromium"]  # a fixture


@dataclass
class CnWeb:
    gateway: RunningGateway
    wechat: WeChatPayServer
    sms: FakeTencentSms


@pytest.fixture
def cn_web(tmp_path: Path) -> Iterator[CnWeb]:
    sock = reserve_socket()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    sms = FakeTencentSms()
    data_dir = str(tmp_path / "data")
    with WeChatPayServer() as wechat:
        billing = start_billing_server(
            f"sqlite:///{tmp_path / 'billing.db'}",
            MARKET="cn",
            GATEWAY_PUBLIC_URL=url,
            ATELIER_DATA_DIR=str(tmp_path / "billing-data"),
            **wechat.billing_settings(tmp_path),
        )
        tasks = start_tasks_server(
            f"sqlite:///{tmp_path / 'tasks.db'}",
            MARKET="cn",
            MODERATION_PROVIDER="local",  # Tencent moderation: test_cn_market_tasks.py, journey
            # No task runs here: generation and storage stay local (COS, Cloud Infinite and
            # RunningHub have their own tests).
            TASKS_STORAGE="local",
            TASKS_PROVIDER_BASIC_CLEAN="local",
            TASKS_PROVIDER_MODEL_POSE12="local",
            ATELIER_DATA_DIR=data_dir,
            ATELIER_INTERNAL_TOKEN=billing.internal_token,
            BILLING_ADDRESS=billing.address,
            GATEWAY_PUBLIC_URL=url,
        )
        settings = gateway_settings(
            data_dir,
            f"sqlite:///{tmp_path / 'gateway.db'}",
            MARKET="cn",
            GATEWAY_PUBLIC_URL=url,
            BILLING_ADDRESS=billing.address,
            TASKS_ADDRESS=f"127.0.0.1:{tasks.port}",
            ATELIER_INTERNAL_TOKEN=billing.internal_token,
            **sms.gateway_settings(),
        )
        gw = start_gateway(settings, sock=sock)
        try:
            yield CnWeb(gw, wechat, sms)
        finally:
            gw.stop()
            tasks.stop()
            billing.stop()
            sms.close()


@pytest.fixture
def person(chromium: tuple[str, str], cn_web: CnWeb, tmp_path: Path) -> Iterator[Person]:
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    # A browser that asks for English: the cn market's page still starts in Chinese.
    driver = start_chromium(*chromium, downloads)
    try:
        yield Person(driver, cn_web.gateway.url, downloads, ARTIFACTS)
    finally:
        driver.quit()


def test_sms_log_in_and_a_wechat_membership_in_chinese(person: Person, cn_web: CnWeb) -> None:
    p = person
    p.driver.get(p.base + "/")
    p.wait_text("h1", "登录")
    assert p.attr("html", "lang") == "zh-CN"
    p.click("a[href^='#/phone']")
    p.fill("#phone-form input[name=phone]", "138 0013 8000")
    p.click("#sms-send")
    p.wait_text("#phone-form .form-status", "验证码已发送")
    (code,) = p.wait(lambda _d: cn_web.sms.codes_sent_to("+8613800138000"))
    p.fill("#phone-form input[name=code]", code)
    p.shot("sms-log-in")
    p.click("#sms-verify")
    p.wait_text("#available", "10")
    p.wait_text("nav.nav", "概览")
    p.shot("dashboard")

    p.go("/buy")
    p.find("#item-plan_monthly")
    assert "¥99.00" in p.text("#item-plan_monthly")
    p.shot("buy")
    p.click("#item-plan_monthly button")
    p.find("#qr")
    p.wait(lambda d: d.execute_script("return document.querySelector('#qr').naturalWidth > 0"))
    p.shot("wechat-qr")
    number = p.text("#order-number")
    cn_web.wechat.pay(number)  # paid at WeChat; the notification is lost
    p.click("#i-have-paid")
    p.wait_attr("#order-status", "data-status", "paid")
    p.shot("wechat-paid")
    p.go("/")
    p.wait_text("#quota", "100")
    p.shot("dashboard-member")

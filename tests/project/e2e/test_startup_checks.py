"""Start-up checks, run as a person runs them: the real command lines as processes.

A market without its credentials (global: Stripe, Replicate, S3; cn: WeChat Pay), an adapter this
build lacks and a bad setting stop each service's ``serve`` — and ``make run``'s supervisor — with
exit status 2 and ONE line on stderr that names every setting to fix, never a traceback.
``promote-admin`` run where there is no gateway database says where it looked and creates
nothing."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.project.unit.test_settings_env import SETTINGS, env_names

CLI = {
    "billing": "atelier_billing.entrypoints.cli",
    "tasks": "atelier_tasks.entrypoints.cli",
    "gateway": "atelier_gateway.entrypoints.cli",
}
DEVSTACK = "atelier_gateway.devstack"
TENCENT_SMS = [
    "TENCENT_SMS_SECRET_ID",
    "TENCENT_SMS_SECRET_KEY",
    "TENCENT_SMS_SDK_APP_ID",
    "TENCENT_SMS_SIGN_NAME",
    "TENCENT_SMS_TEMPLATE_ID",
]
NEEDED_FOR_GLOBAL = {
    "billing": ["STRIPE_API_KEY", "STRIPE_WEBHOOK_SECRET"],
    "tasks": ["REPLICATE_API_TOKEN", "REPLICATE_WEBHOOK_SECRET", "S3_BUCKET"],
    "gateway": [],
}
NEEDED_FOR_CN = [
    "WECHATPAY_MCHID",
    "WECHATPAY_APPID",
    "WECHATPAY_APIV3_KEY",
    "WECHATPAY_MERCHANT_SERIAL_NO",
    "WECHATPAY_MERCHANT_PRIVATE_KEY_FILE",
    "WECHATPAY_PUBLIC_KEY_ID",
    "WECHATPAY_PUBLIC_KEY_FILE",
]


def clean_env(tmp_path: Path, **settings: str) -> dict[str, str]:
    """This process's environment without any Atelier setting, plus ``settings``; ports 0."""
    read = set().union(*(env_names(cls) for cls in SETTINGS.values()))
    env = {k: v for k, v in os.environ.items() if k.upper() not in read}
    env.update(
        ATELIER_DATA_DIR=str(tmp_path / "var"),
        BILLING_GRPC_PORT="0",
        TASKS_GRPC_PORT="0",
        GATEWAY_PORT="0",
        # These checks are about the other settings; the cn and global markets' moderation
        # (Tencent, AWS) is test_moderation_settings_are_named's.
        MODERATION_PROVIDER="local",
    )
    env.update(settings)
    return env


def run(module: str, args: list[str], env: dict[str, str], cwd: Path) -> tuple[int, str]:
    done = subprocess.run(
        [sys.executable, "-m", module, *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return done.returncode, done.stderr


def one_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got:\n{stderr}"
    return lines[0]


@pytest.mark.parametrize("service", ["billing", "tasks"])
def test_global_market_without_credentials_names_every_missing_setting(
    service: str, tmp_path: Path
) -> None:
    code, stderr = run(CLI[service], ["serve"], clean_env(tmp_path, MARKET="global"), tmp_path)
    line = one_line(stderr)
    assert code == 2
    assert line.startswith(f"atelier-{service}: cannot start: MARKET=global needs ")
    for name in NEEDED_FOR_GLOBAL[service]:
        assert name in line
    assert not (tmp_path / "var").exists(), "nothing is created before the check"


def test_global_market_names_only_what_is_still_missing(tmp_path: Path) -> None:
    env = clean_env(tmp_path, MARKET="global", REPLICATE_API_TOKEN="r8_x", S3_BUCKET="media")
    code, stderr = run(CLI["tasks"], ["serve"], env, tmp_path)
    line = one_line(stderr)
    assert code == 2
    assert line.endswith("needs REPLICATE_WEBHOOK_SECRET (see .env.example)"), line
    assert "REPLICATE_API_TOKEN" not in line and "S3_BUCKET" not in line


def test_cn_market_without_wechat_credentials_names_every_missing_setting(
    tmp_path: Path,
) -> None:
    code, stderr = run(CLI["billing"], ["serve"], clean_env(tmp_path, MARKET="cn"), tmp_path)
    line = one_line(stderr)
    assert code == 2
    assert line.startswith("atelier-billing: cannot start: MARKET=cn needs ")
    for name in NEEDED_FOR_CN:
        assert name in line
    assert "WECHATPAY_NOTIFY_URL" not in line  # defaults to $GATEWAY_PUBLIC_URL/webhooks/wechatpay
    assert "not built" not in line
    assert not (tmp_path / "var").exists(), "nothing is created before the check"


def test_cn_market_names_only_the_wechat_settings_still_missing(tmp_path: Path) -> None:
    settings = {name: "x" for name in NEEDED_FOR_CN[2:]}
    (tmp_path / "key.pem").write_text("a key")
    settings["WECHATPAY_APIV3_KEY"] = "k" * 32
    settings["WECHATPAY_MERCHANT_PRIVATE_KEY_FILE"] = str(tmp_path / "key.pem")
    settings["WECHATPAY_PUBLIC_KEY_FILE"] = str(tmp_path / "key.pem")
    env = clean_env(tmp_path, MARKET="cn", **settings)
    code, stderr = run(CLI["billing"], ["serve"], env, tmp_path)
    line = one_line(stderr)
    assert code == 2
    assert line.endswith("MARKET=cn needs WECHATPAY_MCHID, WECHATPAY_APPID (see .env.example)")


def test_cn_market_names_an_absent_key_file_and_a_short_apiv3_key(tmp_path: Path) -> None:
    settings = {name: "x" for name in NEEDED_FOR_CN}
    settings["WECHATPAY_MERCHANT_PRIVATE_KEY_FILE"] = str(tmp_path / "absent.pem")
    (tmp_path / "pub.pem").write_text("a public key")
    settings["WECHATPAY_PUBLIC_KEY_FILE"] = str(tmp_path / "pub.pem")
    code, stderr = run(
        CLI["billing"], ["serve"], clean_env(tmp_path, MARKET="cn", **settings), tmp_path
    )
    line = one_line(stderr)
    assert code == 2
    assert line.endswith(
        "MARKET=cn needs WECHATPAY_APIV3_KEY (32 characters), "
        "WECHATPAY_MERCHANT_PRIVATE_KEY_FILE (no such file) (see .env.example)"
    ), line
    assert str(tmp_path) not in line  # values are never echoed


COS = {
    "COS_SECRET_ID": "AKIDx",
    "COS_SECRET_KEY": "x",
    "COS_REGION": "ap-shanghai",
    "COS_BUCKET": "media-1250000000",
}
RUNNINGHUB = {
    "RUNNINGHUB_API_KEY": "rh-key",
    "RUNNINGHUB_WEBAPP_ID_MODEL_POSE12": "1877265245566922753",
    "RUNNINGHUB_NODE_IMAGE": "12:image",
    "RUNNINGHUB_NODE_PROMPT": "6:text",
}


@pytest.mark.parametrize(
    ("service", "settings"),
    [("tasks", {**RUNNINGHUB, **COS}), ("gateway", {"SMS_PROVIDER": "console"})],
)
def test_cn_market_starts_tasks_and_gateway(
    service: str, settings: dict[str, str], tmp_path: Path
) -> None:
    """Tasks stores in COS, runs basic_clean on Cloud Infinite and model_pose12 on RunningHub."""
    done = subprocess.run(
        [sys.executable, "-m", CLI[service], "check-config"],
        env=clean_env(tmp_path, MARKET="cn", **settings),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert f"atelier-{service}: configuration ok (MARKET=cn)" in done.stdout


def test_cn_market_tasks_without_cos_settings_names_each(tmp_path: Path) -> None:
    env = clean_env(tmp_path, MARKET="cn", **RUNNINGHUB)
    code, stderr = run(CLI["tasks"], ["serve"], env, tmp_path)
    line = one_line(stderr)
    assert code == 2
    assert line.endswith(f"MARKET=cn needs {', '.join(COS)} (see .env.example)"), line
    assert not (tmp_path / "var").exists(), "nothing is created before the check"
    env = clean_env(tmp_path, MARKET="cn", **{**RUNNINGHUB, **COS, "COS_BUCKET": "media"})
    code, stderr = run(CLI["tasks"], ["serve"], env, tmp_path)
    assert one_line(stderr).endswith("needs COS_BUCKET (a <name>-<APPID> value) (see .env.example)")
    # storage and basic_clean elsewhere: COS is not needed
    env = clean_env(
        tmp_path,
        MARKET="cn",
        TASKS_STORAGE="local",
        TASKS_PROVIDER_BASIC_CLEAN="local",
        **RUNNINGHUB,
    )
    code, stderr = run(CLI["tasks"], ["check-config"], env, tmp_path)
    assert code == 0, stderr


def test_cn_market_tasks_without_runninghub_settings_names_each(tmp_path: Path) -> None:
    env = clean_env(tmp_path, MARKET="cn", **COS)
    code, stderr = run(CLI["tasks"], ["serve"], env, tmp_path)
    line = one_line(stderr)
    assert code == 2
    assert line.endswith(f"MARKET=cn needs {', '.join(RUNNINGHUB)} (see .env.example)"), line
    env = clean_env(tmp_path, MARKET="local", TASKS_PROVIDER_MODEL_POSE12="runninghub")
    code, stderr = run(CLI["tasks"], ["serve"], env, tmp_path)
    assert code == 2  # named explicitly in any market: built now, so its settings are needed
    assert one_line(stderr).endswith(
        f"MARKET=local needs {', '.join(RUNNINGHUB)} (see .env.example)"
    )


def test_cn_market_gateway_without_sms_credentials_names_them(tmp_path: Path) -> None:
    """The cn market logs in by Tencent Cloud SMS unless told otherwise."""
    code, stderr = run(CLI["gateway"], ["serve"], clean_env(tmp_path, MARKET="cn"), tmp_path)
    line = one_line(stderr)
    assert code == 2
    assert line.endswith(f"MARKET=cn needs {', '.join(TENCENT_SMS)} (see .env.example)"), line


def test_tencent_sms_without_credentials_names_every_missing_setting(tmp_path: Path) -> None:
    env = clean_env(tmp_path, SMS_PROVIDER="tencent", TENCENT_SMS_SIGN_NAME="Atelier")
    code, stderr = run(CLI["gateway"], ["serve"], env, tmp_path)
    line = one_line(stderr)
    assert code == 2
    missing = [name for name in TENCENT_SMS if name != "TENCENT_SMS_SIGN_NAME"]
    assert line == f"atelier-gateway: cannot start: MARKET=local needs {', '.join(missing)} " + (
        "(see .env.example)"
    )
    assert not (tmp_path / "var").exists(), "nothing is created before the check"
    env.update({name: "x" for name in TENCENT_SMS})
    code, stderr = run(CLI["gateway"], ["check-config"], env, tmp_path)
    assert code == 0, stderr


def test_a_bad_setting_is_one_line_naming_it(tmp_path: Path) -> None:
    env = clean_env(tmp_path, MARKET="mars", TASKS_GRPC_PORT="fifty")
    code, stderr = run(CLI["tasks"], ["serve"], env, tmp_path)
    line = one_line(stderr)
    assert code == 2
    assert line.startswith("atelier-tasks: invalid configuration: ")
    assert "MARKET" in line and "TASKS_GRPC_PORT" in line
    assert "fifty" not in line and "mars" not in line  # values are never echoed (secrets)


def test_a_complete_configuration_passes_the_check(tmp_path: Path) -> None:
    env = clean_env(
        tmp_path,
        MARKET="global",
        STRIPE_API_KEY="sk_test_x",
        STRIPE_WEBHOOK_SECRET="whsec_x",
        REPLICATE_API_TOKEN="r8_x",
        REPLICATE_WEBHOOK_SECRET="whsec_eA==",
        S3_BUCKET="media",
    )
    for service, module in CLI.items():
        done = subprocess.run(
            [sys.executable, "-m", module, "check-config"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        assert f"atelier-{service}: configuration ok (MARKET=global)" in done.stdout


def test_make_run_supervisor_stops_with_one_line_for_the_whole_stack(tmp_path: Path) -> None:
    code, stderr = run(DEVSTACK, [], clean_env(tmp_path, MARKET="global"), tmp_path)
    line = one_line(stderr)
    assert code == 2
    assert line.startswith("atelier: cannot start MARKET=global: billing: ")
    for name in NEEDED_FOR_GLOBAL["billing"] + NEEDED_FOR_GLOBAL["tasks"]:
        assert name in line
    assert not (tmp_path / "var").exists(), "nothing was migrated"

    code, stderr = run(DEVSTACK, [], clean_env(tmp_path, MARKET="cn"), tmp_path)
    line = one_line(stderr)
    assert code == 2
    assert line.startswith("atelier: cannot start MARKET=cn: billing: ")
    for name in NEEDED_FOR_CN:
        assert name in line
    assert "not built" not in line


def test_promote_admin_where_there_is_no_database_says_where_it_looked(tmp_path: Path) -> None:
    code, stderr = run(
        CLI["gateway"], ["promote-admin", "ada@example.com"], clean_env(tmp_path), tmp_path
    )
    line = one_line(stderr)
    assert code == 2
    assert f"no gateway database at {tmp_path / 'var' / 'gateway.db'}" in line
    assert "GATEWAY_DATABASE_URL" in line
    assert not (tmp_path / "var").exists(), "no empty database (nor a JWT secret) was created"


def test_promote_admin_on_an_unmigrated_database_says_so(tmp_path: Path) -> None:
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "gateway.db").write_bytes(b"")  # an empty SQLite file: no tables
    code, stderr = run(
        CLI["gateway"], ["promote-admin", "ada@example.com"], clean_env(tmp_path), tmp_path
    )
    line = one_line(stderr)
    assert code == 2
    assert re.search(r"gateway database sqlite:///\S+gateway\.db .* has no users table", line)
    assert "atelier-gateway migrate" in line


def test_promote_admin_of_an_unknown_user_names_the_database(tmp_path: Path) -> None:
    env = clean_env(tmp_path)
    code, stderr = run(CLI["gateway"], ["migrate"], env, tmp_path)
    assert code == 0, stderr
    code, stderr = run(CLI["gateway"], ["promote-admin", "ghost@example.com"], env, tmp_path)
    line = one_line(stderr)
    assert code == 1
    assert "ghost@example.com" in line and str(tmp_path / "var" / "gateway.db") in line


def test_what_the_checks_call_built_is_what_bootstrap_builds(tmp_path: Path) -> None:
    """The start-up checks' lists of built adapters (settings) agree with the composition roots:
    when the cn adapters land in bootstrap, this fails until the lists say so too."""
    from atelier_billing.bootstrap import build_payment_provider
    from atelier_billing.settings import BUILT_CHANNELS, MARKET_CHANNELS, BillingSettings
    from atelier_ports.clock import SystemClock
    from atelier_tasks.bootstrap import build_providers, build_storage
    from atelier_tasks.settings import BUILT_PROVIDERS, BUILT_STORAGE, MARKET_ROUTES, TasksSettings
    from tests.support.wechatpay_server import MERCHANT_SERIAL, PUBLIC_KEY_ID, WeChatKeys

    clock = SystemClock()
    keys = WeChatKeys()
    (tmp_path / "merchant.pem").write_text(keys.merchant_private_pem)
    (tmp_path / "platform.pub.pem").write_text(keys.platform_public_pem)
    vendor: dict[str, Any] = {
        "REPLICATE_API_TOKEN": "r8_x",
        "REPLICATE_WEBHOOK_SECRET": "whsec_eA==",
        "S3_BUCKET": "media",
        "RUNNINGHUB_API_KEY": "rh-x",
        "RUNNINGHUB_WEBAPP_ID_TEXT_TO_IMAGE": "1877265245566922799",
        "RUNNINGHUB_NODE_PROMPT": "6:text",
        "STRIPE_API_KEY": "sk_test_x",
        "STRIPE_WEBHOOK_SECRET": "whsec_x",
        "WECHATPAY_MCHID": keys.mchid,
        "WECHATPAY_APPID": keys.appid,
        "WECHATPAY_APIV3_KEY": keys.apiv3_key,
        "WECHATPAY_MERCHANT_SERIAL_NO": MERCHANT_SERIAL,
        "WECHATPAY_MERCHANT_PRIVATE_KEY_FILE": str(tmp_path / "merchant.pem"),
        "WECHATPAY_PUBLIC_KEY_ID": PUBLIC_KEY_ID,
        "WECHATPAY_PUBLIC_KEY_FILE": str(tmp_path / "platform.pub.pem"),
        "ATELIER_DATA_DIR": str(tmp_path),
        **COS,
    }
    every_provider = {p for routes in MARKET_ROUTES.values() for p in routes.values()}
    for provider in sorted(every_provider):
        settings = TasksSettings(**{**vendor, "TASKS_PROVIDER_TEXT_TO_IMAGE": provider})
        if provider in BUILT_PROVIDERS:
            assert provider in build_providers(settings, clock)
            assert not settings.unbuilt_parts()
        else:
            with pytest.raises(RuntimeError):
                build_providers(settings, clock)
            assert settings.unbuilt_parts()
    for backend in ("local", "s3", "cos"):
        settings = TasksSettings(**{**vendor, "TASKS_STORAGE": backend})
        if backend in BUILT_STORAGE:
            build_storage(settings, clock)
        else:
            with pytest.raises(RuntimeError):
                build_storage(settings, clock)
    billing = BillingSettings(**vendor)
    for channel in sorted({c for cs in MARKET_CHANNELS.values() for c in cs}):
        if channel in BUILT_CHANNELS:
            assert build_payment_provider(channel, billing, clock).name == channel
        else:
            with pytest.raises(ValueError):
                build_payment_provider(channel, billing, clock)


def test_moderation_settings_are_named(tmp_path: Path) -> None:
    local = {
        "TASKS_STORAGE": "local",
        "TASKS_PROVIDER_TEXT_TO_IMAGE": "local",
        "TASKS_PROVIDER_BASIC_CLEAN": "local",
        "TASKS_PROVIDER_MODEL_POSE12": "local",
    }
    env = clean_env(tmp_path, MARKET="cn", MODERATION_PROVIDER="", **local)
    code, stderr = run(CLI["tasks"], ["serve"], env, tmp_path)
    line = one_line(stderr)
    assert code == 2
    assert line.endswith(
        "MARKET=cn needs TENCENT_MODERATION_SECRET_ID, TENCENT_MODERATION_SECRET_KEY "
        "(see .env.example)"
    ), line
    assert not (tmp_path / "var").exists(), "nothing is created before the check"
    env = clean_env(tmp_path, MODERATION_PROVIDER="azure")
    code, stderr = run(CLI["tasks"], ["serve"], env, tmp_path)
    assert code == 2
    assert "content moderation azure (MODERATION_PROVIDER: local, tencent, aws)" in one_line(stderr)
    env = clean_env(
        tmp_path, MARKET="cn", MODERATION_PROVIDER="", MODERATION_ENABLED="false", **local
    )
    code, stderr = run(CLI["tasks"], ["check-config"], env, tmp_path)
    assert code == 0, stderr

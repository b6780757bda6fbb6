"""The moderation settings: the market's provider, the switch, and what a start needs."""

from __future__ import annotations

from typing import Any

from atelier_tasks.bootstrap import build_moderation
from atelier_tasks.settings import TasksSettings


def test_the_market_picks_the_provider_and_the_setting_overrides_it() -> None:
    assert TasksSettings().moderation_backend() == "local"
    assert TasksSettings(MARKET="cn").moderation_backend() == "tencent"
    assert TasksSettings(MARKET="global").moderation_backend() == "aws"
    assert TasksSettings(MARKET="cn", MODERATION_PROVIDER="local").moderation_backend() == "local"
    assert TasksSettings(MODERATION_ENABLED=False).moderation_backend() is None
    defaults = TasksSettings()
    assert defaults.moderation_enabled and defaults.moderation_threshold == 0.8


def test_an_adapter_this_build_lacks_stops_the_start_naming_it() -> None:
    settings = TasksSettings(MODERATION_PROVIDER="azure")
    assert settings.unbuilt_parts() == [
        "content moderation azure (MODERATION_PROVIDER: local, tencent, aws)"
    ]
    for market in ("local", "cn", "global"):
        assert not any("moderation" in p for p in TasksSettings(MARKET=market).unbuilt_parts())


def test_tencent_needs_its_keys_and_never_echoes_them() -> None:
    settings = TasksSettings(MARKET="cn", TASKS_STORAGE="local")
    assert [m for m in settings.missing_settings() if "MODERATION" in m] == [
        "TENCENT_MODERATION_SECRET_ID",
        "TENCENT_MODERATION_SECRET_KEY",
    ]
    keyed = TasksSettings(
        MODERATION_PROVIDER="tencent",
        TENCENT_MODERATION_SECRET_ID="AKIDsecret",
        TENCENT_MODERATION_SECRET_KEY="k-secret",
    )
    assert keyed.missing_settings() == []
    assert keyed.tencent_moderation_region == "ap-guangzhou"
    assert "k-secret" not in repr(keyed) and "k-secret" not in repr(build_moderation(keyed))


def test_aws_takes_both_keys_or_neither() -> None:
    assert TasksSettings(MODERATION_PROVIDER="aws").missing_settings() == []  # boto3's chain
    half = TasksSettings(MODERATION_PROVIDER="aws", AWS_MODERATION_ACCESS_KEY_ID="AKIA1")
    assert half.missing_settings() == ["AWS_MODERATION_SECRET_ACCESS_KEY"]
    other = TasksSettings(MODERATION_PROVIDER="aws", AWS_MODERATION_SECRET_ACCESS_KEY="s3cr3t")
    assert other.missing_settings() == ["AWS_MODERATION_ACCESS_KEY_ID"]
    assert "s3cr3t" not in str(other.missing_settings())


def test_the_composition_root_builds_the_chosen_adapter() -> None:
    assert build_moderation(TasksSettings(MODERATION_ENABLED=False)) is None
    cases: tuple[tuple[str, dict[str, Any]], ...] = (
        ("local", {}),
        ("tencent", {"TENCENT_MODERATION_SECRET_ID": "id", "TENCENT_MODERATION_SECRET_KEY": "k"}),
        ("aws", {"AWS_MODERATION_ACCESS_KEY_ID": "id", "AWS_MODERATION_SECRET_ACCESS_KEY": "k"}),
    )
    for provider, env in cases:
        built = build_moderation(TasksSettings(MODERATION_PROVIDER=provider, **env))
        assert built is not None and built.name == provider

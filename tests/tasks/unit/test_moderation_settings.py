"""The moderation settings: the market's provider, the switch, and what a start needs."""

from __future__ import annotations

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
    for market, provider in (("cn", "tencent"), ("global", "aws"), ("local", "aws")):
        settings = TasksSettings(
            MARKET=market,
            MODERATION_PROVIDER="" if market != "local" else provider,
            TASKS_STORAGE="local",
            TASKS_PROVIDER_TEXT_TO_IMAGE="local",
            TASKS_PROVIDER_BASIC_CLEAN="local",
            TASKS_PROVIDER_MODEL_POSE12="local",
        )
        assert settings.unbuilt_parts() == [
            f"content moderation {provider} (set MODERATION_PROVIDER=local, "
            "or MODERATION_ENABLED=false)"
        ]
    off = TasksSettings(MARKET="global", MODERATION_ENABLED=False, TASKS_STORAGE="local")
    assert not any("moderation" in part for part in off.unbuilt_parts())


def test_tencent_needs_its_keys_and_never_echoes_them() -> None:
    settings = TasksSettings(MODERATION_PROVIDER="tencent")
    assert settings.missing_settings() == [
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
    assert "k-secret" not in repr(keyed)
    assert TasksSettings(MODERATION_PROVIDER="aws").missing_settings() == []  # boto3's chain

"""Configuration: `.env.example` names exactly the settings the three services read, and the upload
size limit is one setting (`UPLOAD_MAX_BYTES`) with one default, read by tasks and gateway alike."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic_settings import BaseSettings

from atelier_billing.settings import BillingSettings
from atelier_gateway.settings import GatewaySettings
from atelier_tasks.settings import TasksSettings

ROOT = Path(__file__).resolve().parents[3]
SETTINGS: dict[str, type[BaseSettings]] = {
    "billing": BillingSettings,
    "tasks": TasksSettings,
    "gateway": GatewaySettings,
}


def env_names(settings: type[BaseSettings]) -> set[str]:
    """Every environment variable a pydantic-settings class reads: aliases (each choice of an
    AliasChoices) and, for fields without one, the env prefix + the field name."""
    prefix = str(settings.model_config.get("env_prefix") or "")
    names: set[str] = set()
    for field_name, field in settings.model_fields.items():
        alias = field.validation_alias
        if alias is None:
            names.add(f"{prefix}{field_name}".upper())
            continue
        choices = getattr(alias, "choices", None)
        for name in choices if choices is not None else [alias]:
            if isinstance(name, str):
                names.add(name.upper())
    return names


def example_names() -> list[str]:
    """Every NAME= in .env.example, set or commented out (`# NAME=`)."""
    text = (ROOT / ".env.example").read_text()
    return re.findall(r"^#? ?([A-Z][A-Z0-9_]*)=", text, re.M)


def test_env_example_lists_every_setting_every_service_reads() -> None:
    read = set().union(*(env_names(cls) for cls in SETTINGS.values()))
    listed = example_names()
    missing = sorted(read - set(listed))
    assert not missing, f".env.example lacks settings the services read: {missing}"
    unknown = sorted(set(listed) - read)
    assert not unknown, f".env.example lists settings no service reads: {unknown}"
    duplicated = sorted({name for name in listed if listed.count(name) > 1})
    assert not duplicated, f".env.example lists these more than once: {duplicated}"


def test_env_example_holds_placeholders_only() -> None:
    """No value in .env.example looks like a real credential."""
    for line in (ROOT / ".env.example").read_text().splitlines():
        match = re.match(r"^#? ?([A-Z][A-Z0-9_]*)=(\S*)", line)
        if not match:
            continue
        name, value = match.groups()
        if re.search(r"(SECRET|TOKEN|KEY|KEY_ID|PASSWORD)$", name) and value:
            assert re.search(r"change-me|replace|example", value), f"{name} has a real value?"


def test_upload_limit_is_one_setting_with_one_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("UPLOAD_MAX_BYTES", raising=False)
    tasks, gateway = TasksSettings(), GatewaySettings()
    assert tasks.upload_max_bytes == gateway.upload_max_bytes == 15 * 1024 * 1024
    # The gateway's upload endpoint reads the same value under its historical attribute name.
    assert gateway.upload_max_bytes == tasks.upload_max_bytes
    for cls in (TasksSettings, GatewaySettings):
        names = env_names(cls)
        assert "UPLOAD_MAX_BYTES" in names
        assert not {n for n in names if "UPLOAD" in n} - {"UPLOAD_MAX_BYTES"}

    monkeypatch.setenv("UPLOAD_MAX_BYTES", "1234567")
    tasks, gateway = TasksSettings(), GatewaySettings()
    assert tasks.upload_max_bytes == gateway.upload_max_bytes == 1234567

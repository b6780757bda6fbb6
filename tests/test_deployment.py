"""docker-compose.yml and the Dockerfile name only things that exist: build targets, console
scripts, CLI commands and settings. (The images themselves need a Docker engine to build.)"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic_settings import BaseSettings

from atelier_billing.settings import BillingSettings
from atelier_gateway.settings import GatewaySettings
from atelier_tasks.settings import TasksSettings

ROOT = Path(__file__).resolve().parents[1]
SETTINGS: dict[str, type[BaseSettings]] = {
    "billing": BillingSettings,
    "tasks": TasksSettings,
    "gateway": GatewaySettings,
}
SCRIPTS = {"billing": "atelier-billing", "tasks": "atelier-tasks", "gateway": "atelier-gateway"}


def env_names(settings: type[BaseSettings]) -> set[str]:
    names: set[str] = set()
    for field in settings.model_fields.values():
        alias = field.validation_alias
        choices = getattr(alias, "choices", None)
        for name in choices if choices is not None else [alias]:
            if isinstance(name, str):
                names.add(name.upper())
    return names


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


def test_compose_runs_postgres_and_the_three_services(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) >= {"postgres", "billing", "tasks", "gateway"}
    targets = set(re.findall(r"^FROM \S+ AS (\w+)", (ROOT / "Dockerfile").read_text(), re.M))
    for name in SETTINGS:
        assert compose["services"][name]["build"]["target"] == name
        assert name in targets
    init = (ROOT / "deploy/postgres-init.sql").read_text()
    for name in SETTINGS:
        url = compose["services"][name]["environment"][f"{name.upper()}_DATABASE_URL"]
        assert url.rsplit("/", 1)[1] in init


@pytest.mark.parametrize("service", sorted(SETTINGS))
def test_every_setting_named_in_compose_exists(compose: dict[str, Any], service: str) -> None:
    environment = compose["services"][service]["environment"]
    unknown = set(environment) - env_names(SETTINGS[service])
    assert not unknown, f"{service} is given settings it does not read: {sorted(unknown)}"


@pytest.mark.parametrize("service", sorted(SETTINGS))
def test_every_command_named_exists(compose: dict[str, Any], service: str) -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert SCRIPTS[service] in scripts
    dockerfile = (ROOT / "Dockerfile").read_text()
    stage = dockerfile.split(f"AS {service}\n", 1)[1].split("\nFROM ", 1)[0]
    commands = [compose["services"][service].get("command")]
    commands += [
        re.findall(r"\[([^\]]*)\]", line)[0]
        for line in stage.splitlines()
        if line.startswith("CMD")
    ]
    module = scripts[SCRIPTS[service]].split(":")[0]
    cli_source = (
        ROOT / next(p for p in ROOT.glob(f"services/*/{module.replace('.', '/')}.py"))
    ).read_text()
    for command in filter(None, commands):
        words = command if isinstance(command, list) else re.findall(r'"([^"]*)"', command)
        text = " ".join(words)
        for sub in re.findall(rf"{SCRIPTS[service]} ([\w-]+)", text) or [words[0]]:
            assert f'add_parser("{sub}"' in cli_source, f"{service}: no CLI command {sub!r}"
        for flag in re.findall(r"--[\w-]+", text):
            assert f'"{flag}"' in cli_source, f"{service}: no CLI flag {flag!r}"

"""Issue 10 #4: the plumbing the three services share, once in atelier_common — the settings
base, the command-line skeleton (check-config, one-line configuration errors, exit status 2) and
background loops beside a server."""

from __future__ import annotations

import argparse
import threading
from pathlib import Path

import pytest
from atelier_common.cli import Command, build_parser, run_cli
from atelier_common.lifecycle import start_background
from atelier_common.settings import DEV_INTERNAL_TOKEN, ServiceSettings
from atelier_common.startup import ConfigurationError
from pydantic import Field

from atelier_gateway.settings import GatewaySettings


class ToySettings(ServiceSettings):
    DATABASE_FILE = "toy.db"

    toy_limit: int = Field(3, validation_alias="TOY_LIMIT", ge=0)

    def missing_settings(self) -> list[str]:
        return ["TOY_KEY"] if self.market == "global" else []


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[ToySettings, argparse.Namespace]] = []

    def run(self, settings: ToySettings, args: argparse.Namespace) -> int:
        self.calls.append((settings, args))
        return 7


def _commands(recorder: Recorder) -> tuple[Command[ToySettings], ...]:
    def arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--twice", action="store_true")

    def refuse(_settings: ToySettings, _args: argparse.Namespace) -> int:
        raise ConfigurationError("toy: no database here")

    return (
        Command("go", "run it", recorder.run, arguments),
        Command("refuse", "refuses to start", refuse),
    )


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MARKET", "ATELIER_DATA_DIR", "ATELIER_INTERNAL_TOKEN", "LOG_LEVEL", "TOY_LIMIT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("GATEWAY_LOG_LEVEL", raising=False)


def test_settings_base_reads_the_shared_settings_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    defaults = ToySettings()
    assert (defaults.market, defaults.log_level) == ("local", "INFO")
    assert defaults.internal_token.get_secret_value() == DEV_INTERNAL_TOKEN
    monkeypatch.setenv("MARKET", "global")
    monkeypatch.setenv("ATELIER_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("ATELIER_INTERNAL_TOKEN", "s3cret")
    monkeypatch.setenv("LOG_LEVEL", "debug")
    settings = ToySettings()
    assert settings.market == "global"
    assert settings.data_dir == tmp_path
    assert settings.internal_token.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(settings)
    assert settings.log_level == "debug"


def test_embedded_database_is_an_absolute_sqlite_file_in_the_data_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ATELIER_DATA_DIR", "var")
    assert ToySettings().embedded_database_url() == f"sqlite:///{tmp_path / 'var' / 'toy.db'}"


def test_gateway_log_level_prefers_its_own_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOG_LEVEL", "warning")
    assert GatewaySettings().log_level == "warning"
    monkeypatch.setenv("GATEWAY_LOG_LEVEL", "debug")
    assert GatewaySettings().log_level == "debug"


def test_every_command_line_has_check_config() -> None:
    parser = build_parser("toy", None, _commands(Recorder()))
    assert parser.parse_args(["check-config"]).command == "check-config"
    with pytest.raises(SystemExit):
        parser.parse_args(["nothing-like-it"])


def test_check_config_says_ok_and_runs_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    recorder = Recorder()
    assert run_cli("toy", None, ToySettings, _commands(recorder), ["check-config"]) == 0
    assert capsys.readouterr().out == "toy: configuration ok (MARKET=local)\n"
    assert recorder.calls == []


def test_a_command_gets_the_settings_and_its_arguments() -> None:
    recorder = Recorder()
    assert run_cli("toy", None, ToySettings, _commands(recorder), ["go", "--twice"]) == 7
    [(settings, args)] = recorder.calls
    assert isinstance(settings, ToySettings)
    assert args.twice is True


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"MARKET": "mars"}, "toy: invalid configuration: MARKET: "),
        ({"TOY_LIMIT": "-1"}, "toy: invalid configuration: TOY_LIMIT: "),
        ({"MARKET": "global"}, "toy: cannot start: MARKET=global needs TOY_KEY"),
    ],
)
def test_a_configuration_that_cannot_start_is_one_line_and_exit_status_2(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    env: dict[str, str],
    expected: str,
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    recorder = Recorder()
    for command in (["go"], ["check-config"]):
        assert run_cli("toy", None, ToySettings, _commands(recorder), command) == 2
        err = capsys.readouterr().err
        assert err.startswith(expected) and err.count("\n") == 1, err
    assert recorder.calls == []


def test_a_command_may_refuse_its_configuration(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli("toy", None, ToySettings, _commands(Recorder()), ["refuse"]) == 2
    assert capsys.readouterr().err == "toy: no database here\n"


def test_a_background_loop_runs_until_stopped() -> None:
    started = threading.Event()
    seen: list[threading.Event] = []

    def loop(stop: threading.Event) -> None:
        seen.append(stop)
        started.set()
        stop.wait()

    background = start_background("toy-loop", loop, join_seconds=5)
    assert started.wait(5)
    assert background.thread.name == "toy-loop" and background.thread.daemon
    assert background.thread.is_alive()
    background.stop()
    assert not background.thread.is_alive()
    assert seen == [background.stop_event] and background.stop_event.is_set()

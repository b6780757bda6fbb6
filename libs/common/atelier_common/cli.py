"""The skeleton of the three command lines (``atelier-billing``, ``atelier-tasks``,
``atelier-gateway``): sub-commands, the settings read once from the environment and checked
before anything is built (a configuration that cannot start is ONE line on stderr and exit
status 2, atelier_common.startup), ``check-config``, logging, and the ``migrate`` and ``serve``
plumbing. Each service lists its commands; this module runs them.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from sqlalchemy import Engine

from atelier_common.db import make_engine
from atelier_common.lifecycle import catch_stop_signals
from atelier_common.logs import configure_logging
from atelier_common.settings import ServiceSettings
from atelier_common.startup import ConfigurationError, check_startup, load_settings, report

S = TypeVar("S", bound=ServiceSettings)


def _no_arguments(_parser: argparse.ArgumentParser) -> None:
    return None


@dataclass(frozen=True, slots=True)
class Command(Generic[S]):
    """One sub-command: ``run(settings, args)`` returns the exit status. It may raise
    :class:`ConfigurationError` (reported as a configuration problem, exit status 2)."""

    name: str
    help: str
    run: Callable[[S, argparse.Namespace], int]
    arguments: Callable[[argparse.ArgumentParser], None] = _no_arguments


def build_parser(
    program: str, description: str | None, commands: Sequence[Command[S]]
) -> argparse.ArgumentParser:
    """The command line: the service's commands, and ``check-config`` for every service."""
    parser = argparse.ArgumentParser(prog=program, description=description)
    sub = parser.add_subparsers(dest="command", required=True)
    for command in commands:
        command.arguments(sub.add_parser(command.name, help=command.help))
    sub.add_parser("check-config", help="check the configuration can start, and exit")
    return parser


def run_cli(
    program: str,
    description: str | None,
    settings_class: type[S],
    commands: Sequence[Command[S]],
    argv: list[str] | None = None,
) -> int:
    """Parse ``argv``, read and check the settings, and run the chosen command."""
    args = build_parser(program, description, commands).parse_args(argv)
    by_name = {command.name: command for command in commands}
    try:
        settings = load_settings(settings_class, program)
        check_startup(settings, program)
        if args.command == "check-config":
            print(f"{program}: configuration ok (MARKET={settings.market})")
            return 0
        configure_logging(settings.log_level)
        return by_name[args.command].run(settings, args)
    except ConfigurationError as e:
        return report(e)


def migrate_database(service: str, url: str, upgrade: Callable[[Engine], None]) -> int:
    """``migrate``: bring the service's database schema to the newest revision."""
    engine = make_engine(url)
    try:
        upgrade(engine)
    finally:
        engine.dispose()
    print(f"{service} database migrated ({engine.url.render_as_string(hide_password=True)})")
    return 0


def migrate_quietly(url: str, upgrade: Callable[[Engine], None]) -> None:
    """``serve --migrate`` before the processes start (once, not once per process)."""
    engine = make_engine(url)
    try:
        upgrade(engine)
    finally:
        engine.dispose()


class StoppableServer(Protocol):
    @property
    def port(self) -> int: ...

    def stop(self) -> None: ...


def serve_until_stopped(service: str, host: str, server: StoppableServer) -> int:
    """``serve``: announce the bound address, run until SIGINT or SIGTERM, then stop."""
    stopped = catch_stop_signals()
    print(f"{service} gRPC listening on {host}:{server.port}", flush=True)
    stopped.wait()
    server.stop()
    return 0

"""Shared fixtures: databases (SQLite and PostgreSQL); the boundary of the unit layer."""

from __future__ import annotations

import contextlib
import socket
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

import psycopg
import pytest

from tests.support.browser import BROWSER_STATUS
from tests.support.postgres import PostgresServer, find_postgres

_pg_status: dict[str, str] = {}


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer | None]:
    with find_postgres() as (server, how):
        _pg_status["how"] = how if server else ""
        _pg_status["why_not"] = "" if server else how
        yield server


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database: an SQLite file, or a new database on the PostgreSQL server."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.db'}"
        return
    postgres_server: PostgresServer | None = request.getfixturevalue("postgres_server")
    if postgres_server is None:
        pytest.skip(f"NO POSTGRESQL AVAILABLE — PostgreSQL tests skipped: {_pg_status['why_not']}")
    url = postgres_server.create_database()
    try:
        yield url
    finally:
        with contextlib.suppress(Exception):
            postgres_server.drop_database(url)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _pg_status.get("how"):
        terminalreporter.write_line(f"PostgreSQL tests ran against: {_pg_status['how']}")
    elif _pg_status.get("why_not"):
        terminalreporter.write_sep(
            "!", f"POSTGRESQL TESTS WERE SKIPPED: {_pg_status['why_not']}", red=True, bold=True
        )
    if BROWSER_STATUS.get("why_not"):
        terminalreporter.write_sep(
            "!",
            f"BROWSER TESTS WERE SKIPPED: {BROWSER_STATUS['why_not']}",
            red=True,
            bold=True,
        )


# --- the unit layer stays in the process ----------------------------------------------------------


class UnitBoundaryError(AssertionError):
    """A test under a ``unit/`` directory reached outside the process."""


def _refuse(what: str) -> Callable[..., NoReturn]:
    def refused(*_args: Any, **_kwargs: Any) -> NoReturn:
        raise UnitBoundaryError(
            f"a unit test may not {what}: use a fake of the port, or move the test to "
            "integration/ (real databases, servers) or e2e/ (processes)"
        )

    return refused


@pytest.fixture(autouse=True)
def _unit_tests_stay_in_process(request: pytest.FixtureRequest) -> Iterator[None]:
    """Tests in ``tests/<area>/unit/`` (``make test-unit``) open no database, no network
    connection, no listening port and no process: this trips them if they try."""
    if "unit" not in request.node.path.relative_to(Path(__file__).parent).parts:
        yield
        return
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", _refuse("open a network connection"))
        patch.setattr(socket.socket, "connect_ex", _refuse("open a network connection"))
        patch.setattr(socket.socket, "bind", _refuse("listen on a port"))
        patch.setattr(subprocess.Popen, "__init__", _refuse("start a process"))
        for dbapi in (sqlite3, sqlite3.dbapi2, psycopg):  # what SQLAlchemy's drivers call
            patch.setattr(dbapi, "connect", _refuse("open a database"))
        yield

"""Shared fixtures: databases (SQLite and PostgreSQL), clocks, ids."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

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

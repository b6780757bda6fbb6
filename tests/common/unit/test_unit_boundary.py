"""Issue 10 #7: the unit layer (``tests/<area>/unit``, ``make test-unit``) stays in the process —
a test there that opens a database, a connection, a port or a process fails, saying where it
belongs (tests/conftest.py)."""

from __future__ import annotations

import asyncio
import socket
import sqlite3
import subprocess
import sys

import pytest
from sqlalchemy import create_engine, text

from tests.conftest import UnitBoundaryError


def test_a_unit_test_cannot_open_a_database() -> None:
    with pytest.raises(UnitBoundaryError, match="open a database"):
        sqlite3.connect(":memory:")
    for url in ("sqlite://", "postgresql+psycopg://atelier@127.0.0.1:9/atelier"):
        engine = create_engine(url)
        with pytest.raises(UnitBoundaryError, match="open a database"), engine.connect() as conn:
            conn.execute(text("select 1"))


def test_a_unit_test_cannot_use_the_network() -> None:
    with pytest.raises(UnitBoundaryError, match="network connection"):
        socket.create_connection(("127.0.0.1", 9), timeout=1)
    with socket.socket() as listener, pytest.raises(UnitBoundaryError, match="listen on a port"):
        listener.bind(("127.0.0.1", 0))


def test_a_unit_test_cannot_start_a_process() -> None:
    with pytest.raises(UnitBoundaryError, match="start a process"):
        subprocess.run([sys.executable, "-c", "pass"], check=False)


def test_an_event_loop_is_still_allowed() -> None:
    async def answer() -> int:
        await asyncio.sleep(0)
        return 42

    assert asyncio.run(answer()) == 42

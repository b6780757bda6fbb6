"""Issue 10 #4: the ``migrate`` plumbing of the three command lines (atelier_common.cli), on a
real database."""

from __future__ import annotations

import pytest
from atelier_common.cli import migrate_database
from atelier_common.db import normalise_url
from sqlalchemy import Column, Engine, Integer, MetaData, Table, create_engine, inspect


def _upgrade(engine: Engine) -> None:
    metadata = MetaData()
    Table("toy", metadata, Column("id", Integer, primary_key=True))
    metadata.create_all(engine)


def test_migrate_upgrades_the_database_and_says_where_without_the_password(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert migrate_database("toy", database_url, _upgrade) == 0
    out = capsys.readouterr().out
    assert out.startswith("toy database migrated (") and out.count("\n") == 1
    engine = create_engine(normalise_url(database_url))
    try:
        assert inspect(engine).has_table("toy")
    finally:
        engine.dispose()
    shown = out.removeprefix("toy database migrated (").rstrip(")\n")
    assert engine.url.password is None or engine.url.password not in shown

"""Work done once per cluster while several processes (and replicas) of a service run the same
periodic loop: whoever takes the turn does it, the others skip this round.

On PostgreSQL the turn is a session advisory lock taken without waiting
(``pg_try_advisory_lock``) on one pooled connection for the duration of the work; it is released
at the end, or by PostgreSQL when the process dies. SQLite has one writer at a time and the
work must be idempotent anyway, so there every caller gets the turn.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from sqlalchemy import Engine


def lock_key(name: str) -> int:
    """A stable signed 64-bit advisory lock key for ``name``."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


@contextmanager
def cluster_turn(engine: Engine, name: str) -> Iterator[bool]:
    """``with cluster_turn(engine, "billing.expiry") as mine: if mine: ...``"""
    if engine.dialect.name != "postgresql":
        yield True
        return
    key = lock_key(name)
    with engine.connect() as conn:
        mine = bool(conn.execute(sa.select(sa.func.pg_try_advisory_lock(key))).scalar())
        conn.commit()
        try:
            yield mine
        finally:
            if mine:
                conn.execute(sa.select(sa.func.pg_advisory_unlock(key)))
                conn.commit()

"""SQLAlchemy engines for the embedded default (SQLite) and production (PostgreSQL, psycopg 3).

SQLite is made to behave like a serialising database for writers: every transaction starts with
``BEGIN IMMEDIATE`` (so a read-then-write transaction never fails to upgrade its lock), waits for
the lock instead of failing (busy timeout), uses WAL so readers do not block the writer, and
enforces foreign keys.

PostgreSQL's pool holds as many connections as the service runs calls at once (``pool_size``) and
never pings a connection on checkout (a round trip per use): a connection the server has closed
while it sat in the pool is noticed without one (its socket is readable: the server only speaks
unasked to say goodbye) and replaced, connections are recycled after ``POOL_RECYCLE_SECONDS``, and
a connection that dies mid-call fails that call (nothing committed) and invalidates the pool.
"""

from __future__ import annotations

import select
from abc import ABC, abstractmethod
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from sqlalchemy import Connection, Engine, RootTransaction, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError, IntegrityError
from sqlalchemy.pool import NullPool

SQLITE_BUSY_TIMEOUT_MS = 30_000
POOL_RECYCLE_SECONDS = 1800


def normalise_url(url: str) -> str:
    """Accept ``postgresql://`` and ``postgres://`` URLs and use psycopg 3 for them."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def make_engine(url: str, *, pool_size: int = 10) -> Engine:
    url = normalise_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            poolclass=NullPool,
            connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
        )
        _make_sqlite_transactional(engine)
        return engine
    engine = create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size * 2,
        pool_pre_ping=False,
        pool_recycle=POOL_RECYCLE_SECONDS,
        pool_use_lifo=True,  # the warmest connection (its prepared statements) first
    )
    event.listen(engine, "checkout", _refuse_dead_connection)
    return engine


def _refuse_dead_connection(dbapi_conn: Any, _record: Any, _proxy: Any) -> None:
    """Replace a pooled connection the server has closed, without a round trip: an idle
    connection (none of ours LISTENs) has nothing to read unless the server hung up."""
    if getattr(dbapi_conn, "closed", False) or getattr(dbapi_conn, "broken", False):
        raise DisconnectionError("connection closed")
    pgconn = getattr(dbapi_conn, "pgconn", None)
    if pgconn is None:
        return
    try:
        fd = pgconn.socket
    except Exception as exc:  # psycopg: no socket any more
        raise DisconnectionError("connection has no socket") from exc
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLERR | select.POLLHUP)
    if poller.poll(0):
        raise DisconnectionError("the server closed the connection")


def _make_sqlite_transactional(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # A read-only unit takes no write lock: WAL gives it a snapshot beside the writer.
        read_only = conn.get_execution_options().get(READ_ONLY_OPTION)
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


READ_ONLY_OPTION = "atelier_read_only"


class SqlUnitOfWork(ABC):
    """The SQLAlchemy side of ``atelier_ports.unit_of_work.UnitOfWork``, shared by the services.

    One transaction on one pooled connection: it begins on ``__enter__`` and ends on ``commit()``,
    ``rollback()`` or ``__exit__`` (rolled back unless committed). The connection goes back to the
    pool when the transaction ends, so a repository used after it fails loudly instead of starting
    a transaction nobody commits. Subclasses make their repositories in ``_bind`` and may translate
    driver errors (``_commit_error`` for a failed commit, ``_exit_error`` for what ended the block).

    A ``read_only`` unit only reads. On PostgreSQL it runs in autocommit: no BEGIN, and no
    ROLLBACK at the end — which would also make psycopg drop every statement it has prepared on
    the connection; each statement sees what was committed when it ran, so a read that must be
    consistent is one statement. On SQLite it is a deferred transaction (a snapshot, no write
    lock), committed at the end.

    A ``one_statement`` unit makes one change in one statement (a version-checked UPDATE, say),
    which is atomic by itself: on PostgreSQL it runs in autocommit too (no BEGIN/COMMIT round
    trips; the statement is committed when it succeeds), on SQLite in the usual transaction.
    """

    def __init__(
        self, engine: Engine, *, read_only: bool = False, one_statement: bool = False
    ) -> None:
        self._engine = engine
        self._read_only = read_only
        self._autocommit = (read_only or one_statement) and not is_sqlite(engine)
        self._conn: Connection | None = None
        self._tx: RootTransaction | None = None

    @abstractmethod
    def _bind(self, conn: Connection) -> None:
        """Make the unit's repositories on the transaction's connection."""

    def _commit_error(self, exc: IntegrityError) -> Exception | None:
        return None

    def _exit_error(self, exc: BaseException) -> Exception | None:
        return None

    def __enter__(self) -> Self:
        conn = self._conn = self._engine.connect()
        if self._autocommit:
            conn.execution_options(isolation_level="AUTOCOMMIT")
        else:
            if self._read_only:  # SQLite
                conn.execution_options(**{READ_ONLY_OPTION: True})
            self._tx = conn.begin()
        self._bind(conn)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._read_only and exc is None:
            self.commit()
        else:
            self.rollback()
        if exc is not None:
            translated = self._exit_error(exc)
            if translated is not None:
                raise translated from exc

    def commit(self) -> None:
        if self._autocommit and self._conn is not None:
            self._end()  # autocommit: nothing to end
            return
        if self._tx is None:
            raise RuntimeError("commit() outside the unit's transaction")
        try:
            self._tx.commit()
        except IntegrityError as exc:
            translated = self._commit_error(exc)
            if translated is not None:
                raise translated from exc
            raise
        finally:
            self._end()

    def rollback(self) -> None:
        try:
            if self._tx is not None and self._tx.is_active:
                self._tx.rollback()
        finally:
            self._end()

    def _end(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._conn = None
        self._tx = None

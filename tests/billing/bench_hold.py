"""Statements and CPU per hold, capture and release, through billing's use cases.

    python -m tests.billing.bench_hold [--url postgresql://…] [--n 2000]

Without ``--url`` it uses ``ATELIER_TEST_POSTGRES_URL`` (a throwaway database is created on that
server and dropped afterwards); ``--url sqlite`` measures on a temporary SQLite file. It counts
the statements the driver executes (a ``before_cursor_execute`` listener) and the process CPU time
of this process (the billing side: SQLAlchemy and the driver; PostgreSQL's own
CPU is not in it). ``--trace`` also counts the round trips on the wire (libpq's protocol trace:
the pool's pre-ping, BEGIN, statements, COMMIT), which costs CPU, so take the CPU figures from a
run without it. A figure for humans, not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

from psycopg import pq
from sqlalchemy import Engine, event

from atelier_billing.adapters.persistence.migrate import upgrade
from atelier_billing.application.accounts import SetUpAccount
from atelier_billing.application.adjustments import AdjustCredits
from atelier_billing.application.holds import CaptureHold, HoldCredits, ReleaseHold
from atelier_billing.application.use_cases import BillingUseCases
from atelier_billing.bootstrap import BillingContainer, build_container
from tests.support.billing_server import billing_settings
from tests.support.postgres import ENV_URL, PostgresServer


@contextmanager
def _database(url: str | None) -> Iterator[str]:
    if url == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            yield f"sqlite:///{Path(tmp) / 'bench.db'}"
        return
    server = PostgresServer(admin_url=url or os.environ[ENV_URL], how="bench")
    db = server.create_database()
    try:
        yield db
    finally:
        server.drop_database(db)


def _is_round_trip(fields: list[str]) -> bool:
    return len(fields) >= 3 and fields[0] == "F" and fields[2] in ("Query", "Sync")


class _Counter:
    """Statements the driver executes (``before_cursor_execute``) and, on PostgreSQL, the round
    trips on the wire: libpq's protocol trace of every pooled connection, counting the client's
    Query and Sync messages (so the pool's pre-ping, BEGIN and COMMIT count, and a COMMIT that
    psycopg skips in autocommit does not)."""

    def __init__(self, engine: Engine, trace: bool) -> None:
        self.engine = engine
        self.trace = trace and engine.dialect.name == "postgresql"
        self.statements = 0
        self.texts: list[str] = []
        self._trace = tempfile.TemporaryFile()  # noqa: SIM115 - closed in __exit__
        self._traced: set[int] = set()
        self._trace_mark = 0

    def __enter__(self) -> _Counter:
        event.listen(self.engine, "before_cursor_execute", self._statement)
        if self.trace:
            event.listen(self.engine.pool, "checkout", self._checkout)
        return self

    def __exit__(self, *exc: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self._statement)
        if self.trace:
            event.remove(self.engine.pool, "checkout", self._checkout)
        self.engine.dispose()  # closes the traced connections
        self._trace.close()

    def reset(self) -> None:
        self.statements = 0
        self.texts = []
        self._trace.seek(0, os.SEEK_END)
        self._trace_mark = self._trace.tell()

    def round_trips(self) -> int:
        self._trace.seek(self._trace_mark)
        lines = self._trace.read().decode(errors="replace").splitlines()
        return sum(1 for line in lines if _is_round_trip(line.split("\t")))

    def _statement(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        self.statements += 1
        if len(self.texts) < 40:
            self.texts.append(" ".join(statement.split())[:110])

    def _checkout(self, dbapi_connection: Any, *args: Any) -> None:
        if id(dbapi_connection) not in self._traced:  # from now on, its pre-pings too
            self._traced.add(id(dbapi_connection))
            dbapi_connection.pgconn.trace(self._trace.fileno())
            dbapi_connection.pgconn.set_trace_flags(
                pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE
            )


def _measure(name: str, n: int, counter: _Counter, step: Callable[[int], Any]) -> None:
    step(-1)  # warm the statement caches
    counter.reset()
    cpu, wall = time.process_time(), time.perf_counter()
    for i in range(n):
        step(i)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    trips = f"{counter.round_trips() / n:5.1f} round trips  " if counter.trace else ""
    print(
        f"{name:<14} {counter.statements / n:5.1f} statements  {trips}"
        f"{cpu * 1000 / n:6.2f} ms CPU  {wall * 1000 / n:6.2f} ms wall  (n={n})"
    )


def run(app: BillingContainer, n: int, show: bool, trace: bool) -> None:
    svc = app.use_cases
    now = app.clock.now()
    svc.set_up_account(SetUpAccount("bench"))
    for i, days in enumerate((1, 30, 365)):  # several grants to allocate across
        svc.adjust_credits(
            AdjustCredits(True, "bench", 4 * n + 10, "bench", f"g{i}", now + timedelta(days=days))
        )
    with _Counter(app.engine, trace) as counter:
        _run(svc, n, counter, show)
    assert all(check.ok for check in svc.check_ledger())


def _run(svc: BillingUseCases, n: int, counter: _Counter, show: bool) -> None:
    hold = svc.hold_credits
    _measure("hold", n, counter, lambda i: hold(HoldCredits("bench", f"t{i}", 3, f"task:{i}")))
    if show:  # one hold's statements
        print("  " + "\n  ".join(counter.texts[: max(1, round(counter.statements / n))]))
    _measure("hold (repeat)", n, counter, lambda i: hold(HoldCredits("bench", f"t{i}", 3, "")))
    hold(HoldCredits("bench", "w", 3, ""))  # for the release's warm-up
    half = n // 2
    _measure("capture", half, counter, lambda i: svc.capture_hold(CaptureHold("bench", f"t{i}")))
    release = svc.release_hold
    _measure(
        "release",
        half,
        counter,
        lambda i: release(ReleaseHold("bench", f"t{half + i}" if i >= 0 else "w")),
    )
    _measure(
        "capture (rep.)", half, counter, lambda i: svc.capture_hold(CaptureHold("bench", f"t{i}"))
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=None)
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--show", action="store_true", help="print the hold's statements")
    parser.add_argument(
        "--trace",
        action="store_true",
        help="count PostgreSQL round trips (libpq protocol trace: inflates the CPU figures)",
    )
    args = parser.parse_args()
    with _database(args.url) as url, tempfile.TemporaryDirectory() as tmp:
        app = build_container(billing_settings(url, Path(tmp)))
        upgrade(app.engine)
        try:
            print(f"billing on {app.engine.dialect.name}")
            run(app, args.n, args.show, args.trace)
        finally:
            app.close()


if __name__ == "__main__":
    main()

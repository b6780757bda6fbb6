"""Finding a PostgreSQL server for the tests, in this order:

1. a URL from the environment (``ATELIER_TEST_POSTGRES_URL``), e.g. CI's local server;
2. testcontainers, if a Docker engine answers;
3. a throwaway cluster from local ``initdb``/``pg_ctl`` binaries (run as the ``postgres`` user
   when we are root, since they refuse to run as root);
4. otherwise none: the PostgreSQL tests are skipped with a loud reason.

Each test gets a fresh database created on that server.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg

ENV_URL = "ATELIER_TEST_POSTGRES_URL"


@dataclass
class PostgresServer:
    admin_url: str  # a libpq URL of a database we may CREATE DATABASE from
    how: str

    def create_database(self) -> str:
        # template0 accepts no connections, so "source database is being accessed by other
        # users" cannot happen when test runs create databases at the same time.
        name = f"atelier_t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE \"{name}\" TEMPLATE template0 ENCODING 'UTF8'")
        return _with_database(self.admin_url, name)

    def drop_database(self, url: str) -> None:
        name = url.rsplit("/", 1)[1].split("?")[0]
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _with_database(url: str, name: str) -> str:
    base, _, tail = url.rpartition("/")
    query = tail.split("?", 1)[1] if "?" in tail else ""
    return f"{base}/{name}" + (f"?{query}" if query else "")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _docker_available() -> bool:
    try:
        import docker  # type: ignore[import-untyped]

        docker.from_env(timeout=3).ping()
        return True
    except Exception:
        return False


@contextlib.contextmanager
def _from_testcontainers() -> Iterator[PostgresServer]:
    from testcontainers.postgres import PostgresContainer

    with PostgresContainer("postgres:15-alpine", driver=None) as pg:
        yield PostgresServer(admin_url=pg.get_connection_url(), how="testcontainers")


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for root in (
        sorted(os.listdir("/usr/lib/postgresql"), reverse=True)
        if os.path.isdir("/usr/lib/postgresql")
        else []
    ):
        candidate = os.path.join("/usr/lib/postgresql", root, "bin", name)
        if os.path.exists(candidate):
            return candidate
    return None


@contextlib.contextmanager
def _from_pg_ctl() -> Iterator[PostgresServer]:
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not initdb or not pg_ctl:
        raise RuntimeError("no initdb/pg_ctl binaries on PATH or under /usr/lib/postgresql")
    as_root = os.geteuid() == 0
    prefix = ["runuser", "-u", "postgres", "--"] if as_root else []
    tmp = tempfile.mkdtemp(prefix="atelier-pg-")
    data, sock = os.path.join(tmp, "data"), os.path.join(tmp, "sock")
    os.makedirs(sock)
    if as_root:
        shutil.chown(tmp, "postgres")
        shutil.chown(sock, "postgres")
    port = _free_port()
    subprocess.run(
        [*prefix, initdb, "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"],
        check=True,
        capture_output=True,
    )
    opts = f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300"
    subprocess.run(
        [*prefix, pg_ctl, "-D", data, "-o", opts, "-w", "-l", os.path.join(tmp, "log"), "start"],
        check=True,
        capture_output=True,
    )
    try:
        yield PostgresServer(
            admin_url=f"postgresql://postgres@127.0.0.1:{port}/postgres", how="pg_ctl"
        )
    finally:
        subprocess.run(
            [*prefix, pg_ctl, "-D", data, "-m", "immediate", "stop"], capture_output=True
        )
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def find_postgres() -> Iterator[tuple[PostgresServer | None, str]]:
    """Yields (server, how) or (None, why-not)."""
    url = os.environ.get(ENV_URL)
    if url:
        yield PostgresServer(admin_url=url, how=f"{ENV_URL}"), ENV_URL
        return
    reasons: list[str] = [f"{ENV_URL} is not set"]
    if _docker_available():
        with _from_testcontainers() as server:
            yield server, "testcontainers"
            return
    reasons.append("no Docker engine answers")
    try:
        cm = _from_pg_ctl()
        server = cm.__enter__()
    except Exception as exc:
        reasons.append(f"could not start a cluster with pg_ctl ({exc})")
        yield None, "; ".join(reasons)
        return
    try:
        yield server, "a throwaway pg_ctl cluster"
    finally:
        cm.__exit__(None, None, None)

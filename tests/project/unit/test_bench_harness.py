"""The pieces of ``make bench`` (bench/) that can be wrong without a run: wrk's and pgbench's
output parsers, the generated wrk Lua and pgbench scripts, /proc parsing, the seeding SQL and the
target verdicts. The benchmark itself is not a test (``make bench``)."""

from __future__ import annotations

import hashlib
import hmac
import re

import pytest

from atelier_billing.adapters.persistence import tables as billing_tables
from atelier_tasks.adapters.db import tables as tasks_tables
from bench import pgbench, procstat, report, wrk
from bench.__main__ import PHASES, local_signature, only, percentiles, seed_tasks_sql

WRK_OUTPUT = """\
Running 10s test @ http://127.0.0.1:8080
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   512.30ms  120.10ms   1.85s    70.00%
    Req/Sec    62.10     20.30   120.00     66.00%
  Latency Distribution
     50%  480.50ms
     75%  600.00ms
     90%  750.25ms
     99%    1.20s
  1250 requests in 10.05s, 1.20MB read
  Socket errors: connect 0, read 2, write 0, timeout 3
  Non-2xx or 3xx responses: 7
Requests/sec:    124.38
Transfer/sec:    122.10KB
BENCH_JSON {"requests": 1250, "duration_us": 10050000, "connect": 0, "read": 2, "write": 0, \
"status": 7, "timeout": 3, "p50_us": 480500, "p95_us": 901000, "p99_us": 1200000, "max_us": 1850000}
"""


def test_wrk_report_is_read_with_its_units_and_errors() -> None:
    r = wrk.parse_wrk(WRK_OUTPUT)
    assert r.requests == 1250
    assert r.seconds == pytest.approx(10.05)
    assert r.rps == pytest.approx(124.38)
    assert r.p50_ms == pytest.approx(480.5)
    assert r.p99_ms == pytest.approx(1200.0)  # "1.20s"
    assert r.p95_ms == pytest.approx(901.0)  # from the script's line (wrk prints no p95)
    assert r.errors == 12
    assert r.error_detail == {"read": 2, "timeout": 3, "status": 7}


def test_wrk_microseconds_and_a_clean_run() -> None:
    text = WRK_OUTPUT.replace("480.50ms", "950.00us").replace("1.20s", "2.10ms")
    text = "\n".join(
        line
        for line in text.splitlines()
        if not line.startswith(("  Socket errors", "  Non-2xx", "BENCH_JSON"))
    )
    r = wrk.parse_wrk(text)
    assert r.p50_ms == pytest.approx(0.95)
    assert r.p99_ms == pytest.approx(2.1)
    assert r.p95_ms is None
    assert r.errors == 0


def test_wrk_report_without_distribution_is_refused() -> None:
    text = WRK_OUTPUT.replace("Latency Distribution", "Something else")
    with pytest.raises(ValueError, match="latency distribution"):
        wrk.parse_wrk(text)
    with pytest.raises(ValueError, match="totals"):
        wrk.parse_wrk("  Latency Distribution\n     50%  1.00ms\n     99%  2.00ms\n")


def test_wrk_lua_script_rotates_users_and_keys_every_request() -> None:
    calls = [wrk.Call("tok-a", "/v1/tasks"), wrk.Call("tok-b", "/v1/tasks/t_1")]
    script = wrk.lua_script("POST", calls, body='{"x": "y"}', idempotency_prefix="run1")
    assert '{"tok-a", "/v1/tasks"}' in script and '{"tok-b", "/v1/tasks/t_1"}' in script
    assert 'local body = "{\\"x\\": \\"y\\"}"' in script
    assert '"Idempotency-Key"' in script and 'idem .. "-" .. (tid or 0) .. "-" .. n' in script
    assert "wrk.format(method, c[2], h" in script
    assert "latency:percentile(95)" in script and "BENCH_JSON" in script
    # Balanced Lua blocks: every function/for/if has its end.
    opened = len(re.findall(r"\b(function|for|if)\b", script))
    assert opened == len(re.findall(r"\bend\b", script))
    plain = wrk.lua_script("GET", [wrk.Call("", "/")])
    assert 'local idem = ""' in plain and 'local body = ""' in plain


def test_wrk_lua_script_refuses_nothing_to_do_and_non_ascii() -> None:
    with pytest.raises(ValueError):
        wrk.lua_script("GET", [])
    with pytest.raises(ValueError):
        wrk.lua_script("POST", [wrk.Call("t", "/")], body='{"prompt": "café"}')


def test_wrk_command_has_the_agreed_settings() -> None:
    cmd = wrk.wrk_command("wrk", "http://h", "s.lua", threads=2, connections=64, seconds=10)
    assert cmd[:4] == ["wrk", "-t2", "-c64", "-d10s"]
    assert "--latency" in cmd and cmd[-1] == "http://h"


PGBENCH_OUTPUT = """\
pgbench (15.20 (Debian 15.20-0+deb12u1))
transaction type: /tmp/x.sql
scaling factor: 1
query mode: prepared
number of clients: 64
number of threads: 2
maximum number of tries: 1
duration: 10 s
number of transactions actually processed: 38123
number of failed transactions: 0 (0.000%)
latency average = 16.790 ms
initial connection time = 85.123 ms
tps = 3811.712345 (without initial connection time)
"""


def test_pgbench_summary_is_read() -> None:
    r = pgbench.parse_pgbench(PGBENCH_OUTPUT)
    assert r.tps == pytest.approx(3811.712345)
    assert r.transactions == 38123
    assert r.failed == 0
    assert r.latency_ms == pytest.approx(16.79)
    old = PGBENCH_OUTPUT.replace(
        "tps = 3811.712345 (without initial connection time)",
        "tps = 3700.0 (including connections establishing)\n"
        "tps = 3790.5 (excluding connections establishing)",
    )
    assert pgbench.parse_pgbench(old).tps == pytest.approx(3790.5)
    with pytest.raises(ValueError):
        pgbench.parse_pgbench("pgbench: error: connection refused")


def test_pgbench_script_uses_only_its_variables_and_commits_twice() -> None:
    script = pgbench.CREATE_SCRIPT
    # pgbench reads every :name as a variable, inside string literals too.
    names = set(re.findall(r"(?<!:):([a-z_]+)", script))
    assert names == {"client_id", "r"}
    assert all(f"{v}::text" in script for v in ("client_id", "r"))
    assert script.count("BEGIN;") == 2 and script.count("COMMIT;") == 2
    assert "available >= 1" in script
    cmd = pgbench.pgbench_command(
        "pgbench", "postgresql://x", "s.sql", clients=64, threads=2, seconds=10
    )
    assert cmd[cmd.index("-c") + 1] == "64" and cmd[cmd.index("-j") + 1] == "2"
    assert "prepared" in cmd
    assert "generate_series(0, 63)" in pgbench.seed_accounts_sql(64)


def _schema_columns() -> dict[str, dict[str, bool]]:
    """table → column → NOT NULL without a default, from the bench's DDL."""
    tables: dict[str, dict[str, bool]] = {}
    for name, body in re.findall(r"CREATE TABLE (\w+) \((.*?)\n\);", pgbench.SCHEMA, re.S):
        cols: dict[str, bool] = {}
        for line in body.splitlines():
            m = re.match(r"\s+(\w+) (varchar|bigint|integer|timestamptz|json|text)", line)
            if m:
                cols[m.group(1)] = "NOT NULL" in line and "DEFAULT" not in line
        tables[name] = cols
    return tables


def test_pgbench_tables_have_the_shapes_of_our_migrations() -> None:
    ours = {
        "accounts": billing_tables.accounts,
        "holds": billing_tables.holds,
        "ledger_entries": billing_tables.ledger_entries,
        "tasks": tasks_tables.tasks,
        "task_events": tasks_tables.task_events,
    }
    schema = _schema_columns()
    assert set(schema) == set(ours)
    for name, table in ours.items():
        bench_cols = schema[name]
        assert set(bench_cols) <= {c.name for c in table.columns}, name
        # Every column the service must fill is in the bench's table too.
        required = {
            c.name
            for c in table.columns
            if not c.nullable and c.server_default is None and c.autoincrement is not True
        }
        assert required - {"id"} <= set(bench_cols), name


def test_proc_stat_with_a_tricky_command_name() -> None:
    text = "4242 (python (x) y) S 17 4242 4242 0 -1 4194560 900 0 0 0 153 47 0 0 20 0 5 0 1 2 3"
    assert procstat.parse_stat(text) == (17, 200)


def test_processes_are_grouped_by_their_service_ancestor() -> None:
    procs = {
        10: (1, 0, "python -m atelier_gateway.devstack"),
        11: (10, 100, "python -m atelier_billing.entrypoints.cli serve"),
        12: (10, 200, "python -m atelier_tasks.entrypoints.cli serve"),
        13: (12, 50, "python -c from multiprocessing.spawn import spawn_main"),
        14: (10, 70, "python -m atelier_gateway.entrypoints.cli serve"),
        99: (1, 999, "python -m atelier_tasks.entrypoints.cli serve"),  # another stack's
    }
    names = {"billing": "atelier_billing", "tasks": "atelier_tasks", "gateway": "atelier_gateway"}
    assert procstat.classify(procs, 10, names) == {
        11: "billing",
        12: "tasks",
        13: "tasks",
        14: "gateway",
    }


def test_postgres_backends_are_told_by_their_database() -> None:
    ours = ["atelier_t_abc"]
    assert procstat.is_backend_of("postgres: postgres atelier_t_abc 127.0.0.1(5) idle ", ours)
    assert not procstat.is_backend_of("postgres: postgres atelier_t_abcd 127.0.0.1(5) idle", ours)
    assert procstat.is_backend_of("postgres: 15/main: bob atelier_t_abc [local] idle", ours)
    assert not procstat.is_backend_of("postgres: 15/main: atelier_t_abc x [local] idle", ours)
    assert not procstat.is_backend_of("postgres: 15/main: checkpointer ", ours)
    assert not procstat.is_backend_of("postgres: checkpointer", ours)
    assert not procstat.is_backend_of("python -m x atelier_t_abc", ours)


def test_seeding_copies_one_task_with_unique_keys_and_past_times() -> None:
    columns = [("id", True), ("user_id", True), ("status", True), ("request_id", True)]
    columns += [("created_at", False), ("cost", False), ("lease_owner", True)]
    sql = seed_tasks_sql(columns, {"id", "request_id"}, 1000)
    assert "generate_series(1, 1000)" in sql
    assert "t.id || '-b' || g" in sql and "t.\"request_id\" || '-b' || g" in sql
    assert "'cancelled'" in sql and 't."user_id"' in sql and 't."cost"' in sql
    assert "t.created_at - g * interval '1 second'" in sql
    assert sql.count("%(template)s") == 1


def test_verdicts_against_the_targets() -> None:
    results = {
        "create": {"ratio": 0.3, "p99_ms": 150.0, "errors": 0},
        "read": {"ratio": 0.01},
        "watchers": {"missing": 0},
    }
    verdicts = {c["target"]: c["verdict"] for c in report.checks(results)}
    assert verdicts["create / pgbench ceiling"] == "PASS"
    assert verdicts["create p99"] == "MISS"
    assert verdicts["create errors"] == "PASS"
    assert verdicts["read / bare handler"] == "MISS"
    assert verdicts["read p99"] == "N/A"  # not measured is never a pass
    assert verdicts["watchers without their end"] == "PASS"
    text = report.render({**results, "checks": report.checks(results), "problems": ["x: y"]})
    assert "MISS" in text and "PASS" in text and "problem: x: y" in text


def test_percentiles_and_the_webhook_signature() -> None:
    p = percentiles([float(v) for v in range(1, 101)])
    assert (p["p50_ms"], p["p95_ms"], p["p99_ms"]) == (50.0, 95.0, 99.0)
    assert percentiles([]) == {}
    # HMAC-SHA256("s", "1.{}") — the local provider's documented scheme.
    assert local_signature("s", b"{}", 1) == (
        "t=1,v1=" + hmac.new(b"s", b"1.{}", hashlib.sha256).hexdigest()
    )


def test_bench_only_selects_phases_and_refuses_unknown_names() -> None:
    assert only(None) == only("") == frozenset(PHASES)
    assert only(" create, pgbench ,") == {"create", "pgbench"}
    with pytest.raises(SystemExit, match="creat"):
        only("creat,read")

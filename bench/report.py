"""The targets of issue 15 and the report: a table with PASS/MISS marks, and the same as JSON."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Target:
    name: str
    path: tuple[str, ...]  # where the figure is in the results
    op: str  # ">=", "<", "=="
    bound: float
    unit: str = ""


TARGETS: tuple[Target, ...] = (
    Target("create / pgbench ceiling", ("create", "ratio"), ">=", 0.25),
    Target("create p99", ("create", "p99_ms"), "<", 100, "ms"),
    Target("create errors", ("create", "errors"), "==", 0),
    Target("read / bare handler", ("read", "ratio"), ">=", 0.10),
    Target("read p99", ("read", "p99_ms"), "<", 50, "ms"),
    Target("task list p95 (100k tasks/user)", ("task_list", "p95_ms"), "<", 100, "ms"),
    Target("payment webhook p95", ("webhook", "p95_ms"), "<", 200, "ms"),
    Target("POST /v1/uploads p95", ("presign", "p95_ms"), "<", 50, "ms"),
    Target("basic_clean 12 MP p95", ("basic_clean", "p95_ms"), "<", 500, "ms"),
    Target("worker 2 processes / 1", ("worker", "speedup"), ">=", 1.7, "x"),
    Target("watchers without their end", ("watchers", "missing"), "==", 0),
)

_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": lambda a, b: a >= b,
    "<": lambda a, b: a < b,
    "==": lambda a, b: a == b,
}


def lookup(results: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    cur: Any = results
    for key in path:
        if not isinstance(cur, Mapping) or key not in cur:
            return None
        cur = cur[key]
    return cur


def verdict(target: Target, value: Any) -> str:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return "N/A"
    return "PASS" if _OPS[target.op](float(value), target.bound) else "MISS"


def checks(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    out = []
    for t in TARGETS:
        value = lookup(results, t.path)
        out.append(
            {
                "target": t.name,
                "value": value,
                "goal": f"{t.op} {t.bound:g}{t.unit}",
                "verdict": verdict(t, value),
            }
        )
    return out


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}" if abs(value) >= 0.1 or value == 0 else f"{value:.3f}"
    return str(value)


def render(results: Mapping[str, Any]) -> str:
    lines: list[str] = []
    meta = results.get("meta", {})
    lines.append(
        f"make bench — {meta.get('started_at', '')}  ({meta.get('cores', '?')} cores, "
        f"wrk -t{meta.get('threads', '?')} -c{meta.get('connections', '?')} "
        f"-d{meta.get('seconds', '?')}s; PostgreSQL: {meta.get('postgres', '?')}; load average "
        f"at start {' '.join(f'{x:.1f}' for x in meta.get('load_average', []))})"
    )
    ceil = results.get("ceilings", {})
    lines.append(
        f"ceilings: pgbench minimal create {_fmt(ceil.get('pgbench_create_tps'))} tps "
        f"(p-latency {_fmt(ceil.get('pgbench_latency_ms'))} ms, failed "
        f"{_fmt(ceil.get('pgbench_failed'))}); bare aiohttp GET "
        f"{_fmt(ceil.get('bare_rps'))} req/s (p50 {_fmt(ceil.get('bare_p50_ms'), 2)} ms, p99 "
        f"{_fmt(ceil.get('bare_p99_ms'), 2)} ms)"
    )
    lines.append("")
    head = f"{'hot path':<8} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'ratio':>7}"
    lines.append(head + "   CPU ms/request by process")
    for name in ("create", "read"):
        r = results.get(name) or {}
        cpu = r.get("cpu_ms_per_request") or {}
        cpu_text = ", ".join(f"{k} {_fmt(v, 2)}" for k, v in cpu.items()) or "-"
        lines.append(
            f"{name:<8} {_fmt(r.get('rps')):>9} {_fmt(r.get('p50_ms')):>8} "
            f"{_fmt(r.get('p99_ms')):>8} {_fmt(r.get('errors')):>7} "
            f"{_fmt(r.get('ratio'), 3):>7}   {cpu_text}"
        )
    lines.append("")
    users_tasks = lookup(results, ("task_list", "tasks_of_user")) or "?"
    other = [
        (f"task list ({users_tasks} tasks/user)", "task_list"),
        ("payment webhook", "webhook"),
        ("POST /v1/uploads", "presign"),
        ("basic_clean 12 MP (in-process)", "basic_clean"),
    ]
    lines.append(
        f"{'latency':<32} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'n':>7} {'errors':>7}"
    )
    for label, key in other:
        r = results.get(key) or {}
        lines.append(
            f"{label:<32} {_fmt(r.get('p50_ms')):>8} {_fmt(r.get('p95_ms')):>8} "
            f"{_fmt(r.get('p99_ms')):>8} {_fmt(r.get('requests')):>7} {_fmt(r.get('errors')):>7}"
        )
    w = results.get("worker") or {}
    lines.append(
        f"worker throughput: 1 process {_fmt(w.get('one_tps'))} tasks/s, 2 processes "
        f"{_fmt(w.get('two_tps'))} tasks/s ({_fmt(w.get('speedup'), 2)}x; zero-delay local "
        "generator, `atelier-tasks worker` processes)"
    )
    s = results.get("watchers") or {}
    lines.append(
        f"event streams: {_fmt(s.get('terminal'))}/{_fmt(s.get('watchers'))} watchers received "
        f"their terminal event ({_fmt(s.get('connected'))} connected in 30 s, "
        f"{_fmt(s.get('saw_first_event'))} saw a first event)"
    )
    lines.append("")
    lines.append(f"{'target':<34} {'measured':>10} {'goal':>10}  verdict")
    for c in results.get("checks", []):
        lines.append(f"{c['target']:<34} {_fmt(c['value'], 3):>10} {c['goal']:>10}  {c['verdict']}")
    for problem in results.get("problems", []):
        lines.append(f"problem: {problem}")
    return "\n".join(lines)


def to_json(results: Mapping[str, Any]) -> str:
    return json.dumps(results, indent=2, sort_keys=False, default=str) + "\n"

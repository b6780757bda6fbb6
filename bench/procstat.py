"""CPU time of processes from /proc: ``utime + stime`` of /proc/<pid>/stat, in milliseconds.

The service processes are found as descendants of the stack's supervisor and grouped by the
service whose module appears in their own or their nearest ancestor's command line, so worker
processes a service forks or spawns are counted with it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def parse_stat(text: str) -> tuple[int, int]:
    """(ppid, utime + stime in clock ticks) from the text of /proc/<pid>/stat."""
    # The command name (field 2) is in parentheses and may contain spaces or parentheses.
    rest = text[text.rindex(")") + 2 :].split()
    # rest[0] is field 3 (state): ppid is field 4, utime field 14, stime field 15.
    return int(rest[1]), int(rest[11]) + int(rest[12])


def _read(path: str) -> str | None:
    try:
        with open(path, "rb") as f:
            return f.read().decode(errors="replace")
    except OSError:
        return None


def _all_processes() -> dict[int, tuple[int, int, str]]:
    """pid → (ppid, cpu ticks, command line)."""
    found: dict[int, tuple[int, int, str]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        stat = _read(f"/proc/{name}/stat")
        cmd = _read(f"/proc/{name}/cmdline")
        if stat is None or cmd is None:
            continue
        ppid, ticks = parse_stat(stat)
        found[int(name)] = (ppid, ticks, cmd.replace("\0", " "))
    return found


def classify(
    procs: Mapping[int, tuple[int, int, str]], root: int, names: Mapping[str, str]
) -> dict[int, str]:
    """pid → service name for the descendants of ``root`` (``names``: service → cmdline marker)."""
    result: dict[int, str] = {}
    for pid in procs:
        chain: list[int] = []
        cur = pid
        while cur in procs and cur != root and cur not in chain:
            chain.append(cur)
            cur = procs[cur][0]
        if cur != root:
            continue
        for ancestor in chain:  # nearest first
            cmd = procs[ancestor][2]
            service = next((s for s, marker in names.items() if marker in cmd), None)
            if service:
                result[pid] = service
                break
    return result


def service_cpu_ms(root: int, names: Mapping[str, str]) -> dict[str, float]:
    """Cumulative CPU milliseconds per service among the live descendants of ``root``."""
    procs = _all_processes()
    totals = dict.fromkeys(names, 0.0)
    for pid, service in classify(procs, root, names).items():
        totals[service] += procs[pid][1] * 1000.0 / CLK_TCK
    return totals


def service_pids(root: int, names: Mapping[str, str]) -> dict[str, list[int]]:
    procs = _all_processes()
    out: dict[str, list[int]] = {s: [] for s in names}
    for pid, service in classify(procs, root, names).items():
        out[service].append(pid)
    return out


def backend_cpu_ms(databases: list[str]) -> float:
    """Cumulative CPU milliseconds of the live PostgreSQL backends serving ``databases`` (their
    process titles name the database). Backends that exit between two readings are missed, so
    deltas are a lower bound."""
    total = 0.0
    for _ppid, ticks, cmd in _all_processes().values():
        if is_backend_of(cmd, databases):
            total += ticks * 1000.0 / CLK_TCK
    return total


def is_backend_of(cmdline: str, databases: list[str]) -> bool:
    """``postgres: [<cluster name>:] <user> <database> <client> <state>`` (a backend's title)."""
    words = cmdline.split()
    if words[:1] != ["postgres:"]:
        return False
    words = words[2:] if len(words) > 1 and words[1].endswith(":") else words[1:]
    return len(words) >= 2 and words[1] in databases

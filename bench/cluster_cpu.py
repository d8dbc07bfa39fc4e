"""CPU time of process trees, for the cluster benchmark: a process and all its
descendants (a gateway node and its parse process; PostgreSQL's postmaster and
its backends), read from Linux /proc.

`tree_cpu(pid)` is user + system seconds of `pid` and every live descendant;
`CpuGroups` takes one snapshot of several named trees, and `delta` subtracts
two snapshots per process, so a process that started in between counts from
zero and one that ended contributes what it had at the first snapshot only
(its last seconds are lost; the benchmark keeps its processes alive during a
phase).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, CPU seconds) of one process, or None when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / TICK


def process_table() -> dict[int, tuple[int, float]]:
    """Every live process: pid -> (parent pid, CPU seconds)."""
    table = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (found := _stat(int(entry))) is not None:
            table[int(entry)] = found
    return table


def descendants(root: int, table: Mapping[int, tuple[int, float]]) -> set[int]:
    """`root` and every process below it in `table`."""
    children: dict[int, list[int]] = {}
    for pid, (parent, _) in table.items():
        children.setdefault(parent, []).append(pid)
    found, todo = set(), [root]
    while todo:
        pid = todo.pop()
        if pid in table and pid not in found:
            found.add(pid)
            todo.extend(children.get(pid, []))
    return found


Snapshot = dict[str, dict[int, float]]


def snapshot(roots: Mapping[str, int]) -> Snapshot:
    """Per named root: CPU seconds of each process of its tree, now."""
    table = process_table()
    return {name: {pid: table[pid][1] for pid in descendants(root, table)}
            for name, root in roots.items()}  # fmt: skip


def delta(before: Snapshot, after: Snapshot) -> dict[str, float]:
    """CPU seconds each named tree used between two snapshots."""
    out = {}
    for name, now in after.items():
        then = before.get(name, {})
        out[name] = sum(max(0.0, cpu - then.get(pid, 0.0)) for pid, cpu in now.items())
    return out


def postmaster_pid(data_dir: Path) -> int:
    """The PostgreSQL server's pid, first line of `postmaster.pid` in its data dir."""
    return int((data_dir / "postmaster.pid").read_text().splitlines()[0])

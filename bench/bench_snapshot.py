"""Directory snapshot rebuild: read 1,000 agencies and 10,000 employees from the
database into a `DirectorySnapshot` and recompile a 200-rule policy against it —
what a running gateway does when the directory changes (aim: under 1 s).

Run from the repository root (SQLite; the data directory is temporary):

    .venv/bin/python -m bench.bench_snapshot [--runs 5]

Baseline in the same run: a plain `sqlite3` SELECT of the same employee rows.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import os
import random
import sqlite3
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from bench.bench_import import barid_command
from bench.bench_policy import FEDERATION, build_policy_text, build_records
from gateway.config import load_settings
from gateway.store.db import create_engine, session_factory
from gateway.store.directory import load_snapshot
from policies.loader import check_policy


async def measure(config: Path, policy_text: str, runs: int) -> list[tuple[float, float, float]]:
    settings = load_settings(config, environ={})
    engine = create_engine(settings.database_url)
    sessions = session_factory(engine)
    db_file = settings.data_dir / "barid.db"
    out = []
    try:
        for _ in range(runs):
            started = time.perf_counter()
            async with sessions() as session:
                snapshot = await load_snapshot(session)
            loaded = time.perf_counter() - started
            started = time.perf_counter()
            result = check_policy(policy_text, snapshot, FEDERATION)
            compiled = time.perf_counter() - started
            if result.policy is None:
                raise SystemExit("\n".join(str(p) for p in result.problems[:10]))
            started = time.perf_counter()
            with sqlite3.connect(db_file) as conn:
                rows = conn.execute(
                    "SELECT address, agency_id, name_en, name_ar, role, clearance, status, code"
                    " FROM employees"
                ).fetchall()
            assert len(rows) == len(snapshot.employees)
            baseline = time.perf_counter() - started
            out.append((loaded, compiled, baseline))
    finally:
        await engine.dispose()
    return out


def directory_csv() -> bytes:
    """The policy benchmark's synthetic directory as an onboarding CSV."""
    agencies, employees = build_records(random.Random(7))
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["type", "code", "name_en", "name_ar", "kind", "domain", "parent",
                     "address", "agency", "role", "clearance"])  # fmt: skip
    for a in agencies:
        writer.writerow(["agency", a.code, a.name_en, a.name_ar, a.kind.value, a.domain,
                         a.parent or "", "", "", "", ""])  # fmt: skip
    for e in employees:
        writer.writerow(["employee", "", e.name_en, e.name_ar, "", "", "", e.address, e.agency,
                         e.role, e.clearance.label])  # fmt: skip
    return buf.getvalue().encode("utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    data = directory_csv()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BARID_")}
    with tempfile.TemporaryDirectory(prefix="barid-bench-") as tmp:
        base = Path(tmp)
        (base / "dir.csv").write_bytes(data)
        subprocess.run([*barid_command(), "init", "--data-dir", str(base / "d")],
                       check=True, capture_output=True, env=env, timeout=120)  # fmt: skip
        env["BARID_CONFIG"] = str(base / "d" / "barid.toml")
        subprocess.run([*barid_command(), "directory", "import", str(base / "dir.csv")],
                       check=True, capture_output=True, env=env, timeout=300)  # fmt: skip
        text = build_policy_text()
        results = asyncio.run(measure(base / "d" / "barid.toml", text, args.runs))
    loads = [r[0] for r in results]
    compiles = [r[1] for r in results]
    totals = [r[0] + r[1] for r in results]
    ratios = [r[0] / r[2] for r in results]
    print(f"command: .venv/bin/python -m bench.bench_snapshot --runs {args.runs}")
    for label, values in (("snapshot load (DB -> snapshot)", loads),
                          ("policy recompile (200 rules)", compiles),
                          ("rebuild total", totals)):  # fmt: skip
        print(
            f"{label:32s} median {statistics.median(values) * 1000:7.1f} ms"
            f"  min {min(values) * 1000:7.1f}  max {max(values) * 1000:7.1f}"
        )
    print(
        f"snapshot load / plain sqlite3 SELECT of the same rows: median"
        f" {statistics.median(ratios):.1f}x (min {min(ratios):.1f}x, max {max(ratios):.1f}x)"
    )


if __name__ == "__main__":
    main()

"""Benchmark of `barid directory import` on SQLite and PostgreSQL.

Generates a realistic onboarding CSV (by default 1,000 agencies in a tree and
10,000 employees), then for each backend and each run initialises a fresh data
directory with `barid init`, times `barid directory import FILE.csv --json` as a
whole process, checks the reported counts and that `barid audit verify` passes.

Each run also times a baseline on the same machine at the same moment: the same
rows inserted with plain `sqlite3` executemany (SQLite), or with asyncpg
executemany and copy_records_to_table (PostgreSQL) into a trivial table. The
import/baseline ratio is steadier than the raw seconds on a shared machine.

PostgreSQL is started by this script as the test suite starts it
(testkit/postgres.py): the machine's own binaries (initdb + pg_ctl), a temporary
directory, 127.0.0.1 on a free port (as the `postgres` user when run as root),
stopped at the end.

Run from the repository root:

    .venv/bin/python -m bench.bench_import [--runs 3] [--agencies 1000]
        [--employees 10000] [--backend sqlite|postgres|both] [--seed 7]

A JSON summary is written to bench/results/import.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shlex
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from bench.import_data import COLUMNS, build_csv, csv_records
from testkit.postgres import (
    PgServer,
    create_pg_database,
    drop_pg_database,
    postgres_cluster,
)

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "import.json"
IMPORT_TIMEOUT = 900  # seconds for one `barid directory import`
STEP_TIMEOUT = 300  # seconds for init, audit verify and PostgreSQL control
TARGET_SECONDS = 30.0  # the SQLite goal for the whole import

class BenchError(Exception):
    """A step of the benchmark failed; the message says which and why."""


# ---------------------------------------------------------------- PostgreSQL


def no_postgres(reason: str) -> None:
    """PostgreSQL cannot run here: the benchmark stops (testkit.postgres calls this)."""
    raise BenchError(reason)


# ---------------------------------------------------------------- baselines

_BASELINE_TABLE = "CREATE TABLE rows_in ({})".format(", ".join(f"{c} TEXT" for c in COLUMNS))
_SQLITE_INSERT = "INSERT INTO rows_in VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
_PG_INSERT = "INSERT INTO rows_in VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"


def sqlite_baseline(records: list[tuple[str, ...]], path: Path) -> float:
    """Seconds to insert `records` with sqlite3 executemany and commit (Barid's pragmas)."""
    start = time.perf_counter()
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute(_BASELINE_TABLE)
        with conn:
            conn.executemany(_SQLITE_INSERT, records)
    finally:
        conn.close()
    return time.perf_counter() - start


async def _pg_baseline(dsn: str, records: list[tuple[str, ...]]) -> tuple[float, float]:
    import asyncpg

    conn = await asyncpg.connect(dsn, timeout=30)
    try:
        await conn.execute(_BASELINE_TABLE)
        await conn.execute(_BASELINE_TABLE.replace("rows_in", "rows_copy"))
        start = time.perf_counter()
        async with conn.transaction():
            await conn.executemany(_PG_INSERT, records)
        many = time.perf_counter() - start
        start = time.perf_counter()
        async with conn.transaction():
            await conn.copy_records_to_table("rows_copy", records=records, columns=list(COLUMNS))
        copy = time.perf_counter() - start
    finally:
        await conn.close()
    return many, copy


def postgres_baseline(server: PgServer, records: list[tuple[str, ...]]) -> tuple[float, float]:
    """Seconds for asyncpg executemany and for copy_records_to_table of `records`."""
    name = create_pg_database(server, "baseline")
    try:
        return asyncio.run(_pg_baseline(server.dsn(name), records))
    finally:
        drop_pg_database(server, name)


# ---------------------------------------------------------------- the import


def barid_command() -> list[str]:
    beside = Path(sys.executable).parent / "barid"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("barid")
    if found:
        return [found]
    return [sys.executable, "-m", "admin"]


def _env(config: Path, database_url: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BARID_")}
    env["BARID_CONFIG"] = str(config)
    if database_url:
        env["BARID_DATABASE__URL"] = database_url
    return env


def _run(args: list[str], env: dict[str, str], timeout: float, what: str) -> tuple[str, float]:
    start = time.perf_counter()
    try:
        done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise BenchError(f"{what}: no answer within {timeout:.0f} s") from None
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise BenchError(f"{what}: exit {done.returncode}: {done.stderr.strip()[-2000:]}")
    return done.stdout, elapsed


@dataclass
class RunResult:
    import_s: float
    baseline_s: float
    baseline_copy_s: float | None
    init_s: float
    verify_s: float
    audit_events: int

    @property
    def ratio(self) -> float:
        return self.import_s / self.baseline_s


def one_run(
    backend: str,
    csv_file: Path,
    records: list[tuple[str, ...]],
    counts: tuple[int, int],
    work: Path,
    server: PgServer | None,
) -> RunResult:
    data_dir = work / f"data-{backend}-{uuid.uuid4().hex[:8]}"
    database: str | None = None
    try:
        url = None
        if server is not None:
            database = create_pg_database(server, "barid")
            url = server.url(database)
        env = _env(data_dir / "barid.toml", url)
        cli = barid_command()
        _, init_s = _run([*cli, "init", "--data-dir", str(data_dir)], env, STEP_TIMEOUT, "init")

        out, import_s = _run(
            [*cli, "directory", "import", str(csv_file), "--json"], env, IMPORT_TIMEOUT, "import"
        )
        result = json.loads(out)
        agencies, employees = counts
        if not (
            result.get("ok") is True
            and result.get("dry_run") is False
            and result.get("agencies") == agencies
            and result.get("employees") == employees
            and len(result.get("issued", ())) == employees
        ):
            brief = {k: v for k, v in result.items() if k != "issued"}
            raise BenchError(f"import reported {brief}, expected {agencies}/{employees} rows")

        out, verify_s = _run([*cli, "audit", "verify", "--json"], env, STEP_TIMEOUT, "audit verify")
        report = json.loads(out)
        if report.get("ok") is not True:
            raise BenchError(f"audit verify: {report.get('problems')}")

        if server is None:
            baseline_s = sqlite_baseline(records, work / f"baseline-{uuid.uuid4().hex[:8]}.db")
            copy_s = None
        else:
            baseline_s, copy_s = postgres_baseline(server, records)
        return RunResult(import_s, baseline_s, copy_s, init_s, verify_s, int(report["events"]))
    finally:
        if server is not None and database is not None:
            drop_pg_database(server, database)
        shutil.rmtree(data_dir, ignore_errors=True)


# ---------------------------------------------------------------- report


def spread(values: list[float]) -> dict[str, float]:
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
    }


def summarise(backend: str, runs: list[RunResult], version: str) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "backend": backend,
        "server_version": version,
        "import_s": spread([r.import_s for r in runs]),
        "baseline_s": spread([r.baseline_s for r in runs]),
        "ratio": spread([r.ratio for r in runs]),
        "init_s": spread([r.init_s for r in runs]),
        "audit_verify_s": spread([r.verify_s for r in runs]),
        "runs": [
            {
                "import_s": r.import_s,
                "baseline_s": r.baseline_s,
                "ratio": r.ratio,
                "init_s": r.init_s,
                "audit_verify_s": r.verify_s,
                "audit_events": r.audit_events,
                **({"baseline_copy_s": r.baseline_copy_s} if r.baseline_copy_s is not None else {}),
            }
            for r in runs
        ],
    }
    if backend == "sqlite":
        summary["baseline"] = "sqlite3 executemany into one TEXT table, WAL, synchronous=FULL"
        summary["target_s"] = TARGET_SECONDS
        summary["within_target"] = summary["import_s"]["median"] < TARGET_SECONDS
    else:
        copies = [r.baseline_copy_s for r in runs if r.baseline_copy_s is not None]
        summary["baseline"] = "asyncpg executemany into one TEXT table, one transaction"
        summary["baseline_copy_s"] = spread(copies)
        summary["ratio_to_copy"] = spread(
            [r.import_s / c for r, c in zip(runs, copies, strict=True)]
        )
    return summary


def print_summary(s: dict[str, Any]) -> None:
    def line(label: str, v: dict[str, float], unit: str = "s") -> None:
        print(
            f"  {label:<28} median {v['median']:8.3f}{unit}"
            f"   min {v['min']:8.3f}{unit}   max {v['max']:8.3f}{unit}"
        )

    print(f"{s['backend']} ({s['server_version']})")
    line("directory import (process)", s["import_s"])
    line("baseline", s["baseline_s"])
    line("ratio import/baseline", s["ratio"], "x")
    if "baseline_copy_s" in s:
        line("baseline copy_records", s["baseline_copy_s"])
        line("ratio import/copy", s["ratio_to_copy"], "x")
    line("barid init", s["init_s"])
    line("barid audit verify", s["audit_verify_s"])
    print(f"  baseline: {s['baseline']}")
    if "target_s" in s:
        verdict = "within" if s["within_target"] else "OVER"
        print(f"  target: whole import under {s['target_s']:.0f} s -> {verdict}")


def _stop_on_signal(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through the cleanups (PostgreSQL, temp dirs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--agencies", type=int, default=1000)
    parser.add_argument("--employees", type=int, default=10000)
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--output", type=Path, default=RESULTS, help="JSON summary file.")
    args = parser.parse_args(argv)
    if not 1 <= args.runs <= 50 or not 1 <= args.agencies <= 20000:
        parser.error("--runs must be 1..50 and --agencies 1..20000")
    if not 0 <= args.employees <= 190000:
        parser.error("--employees must be 0..190000")
    signal.signal(signal.SIGTERM, _stop_on_signal)

    command = shlex.join(getattr(sys, "orig_argv", [sys.executable, *sys.argv]))
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    data, agencies, employees = build_csv(args.agencies, args.employees, args.seed)
    records = csv_records(data)
    print(f"command: {command}")
    print(
        f"csv: {agencies} agencies, {employees} employees, {len(data) / 1e6:.2f} MB;"
        f" {args.runs} run(s) per backend; timed: barid directory import FILE.csv --json"
    )

    summaries: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="barid-bench-import-") as tmp:
        work = Path(tmp)
        csv_file = work / "directory.csv"
        csv_file.write_bytes(data)
        for backend in backends:
            runs: list[RunResult] = []
            if backend == "sqlite":
                for n in range(args.runs):
                    runs.append(
                        one_run(backend, csv_file, records, (agencies, employees), work, None)
                    )
                    print(f"  sqlite run {n + 1}: import {runs[-1].import_s:.3f}s,"
                          f" baseline {runs[-1].baseline_s:.3f}s", flush=True)  # fmt: skip
                summaries.append(summarise(backend, runs, f"SQLite {sqlite3.sqlite_version}"))
            else:
                with postgres_cluster(no_postgres) as cluster:
                    server = cluster.server
                    for n in range(args.runs):
                        runs.append(
                            one_run(backend, csv_file, records, (agencies, employees), work, server)
                        )
                        print(f"  postgres run {n + 1}: import {runs[-1].import_s:.3f}s,"
                              f" baseline {runs[-1].baseline_s:.3f}s", flush=True)  # fmt: skip
                    summaries.append(summarise(backend, runs, cluster.version()))
            print_summary(summaries[-1])

    report = {
        "benchmark": "directory import",
        "command": command,
        "timed_command": "barid directory import FILE.csv --json",
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
        },
        "params": {
            "runs": args.runs,
            "agencies": agencies,
            "employees": employees,
            "seed": args.seed,
            "csv_bytes": len(data),
        },
        "backends": summaries,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", "utf-8")
    print(f"summary written to {args.output}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        print(f"bench_import: {exc}", file=sys.stderr)
        sys.exit(1)
    except subprocess.CalledProcessError as exc:
        tail = (exc.stderr or b"").decode(errors="replace")[-2000:]
        print(f"bench_import: {shlex.join(map(str, exc.cmd))} failed: {tail}", file=sys.stderr)
        sys.exit(1)

"""A/B of `[server] check_workers` on signed-message submission, in one run.

The same workload as bench/bench_submission.py (its demo data, messages, client
and phases), against two `barid serve` processes started side by side from
copies of one demo data directory: A with `check_workers = 0` (the checks in a
thread of the server) and B with `check_workers = 1` (the checks in a child
process). Peak phases alternate A/B (B/A on even rounds) so that both see the
same machine state; the B/A throughput ratio is taken per round. A paced phase
then offers both half of A's median peak rate. Server CPU counts each server's
child processes (its check and parse processes).

Run from the repository root:

    .venv/bin/python -m bench.bench_check_workers [--rounds 3] [--duration 10]
        [--sessions 20] [--messages 200] [--document-kb 100] [--half-duration 10]

A JSON summary is written to bench/results/check_workers.json (git-ignored).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.bench_submission import (
    ROOT,
    Phase,
    Workload,
    _stop_on_signal,
    barid_server,
    build_messages,
    check_policy,
    client_tls,
    fmt,
    make_demo,
    run_phase,
    spread,
)

RESULTS = ROOT / "bench" / "results" / "check_workers.json"
NAMES = ("thread", "process")  # check_workers = 0, 1


def summarise(peaks: list[Phase], halves: list[Phase]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for name in NAMES:
        mine = [p for p in peaks if p.server == name]
        summary[name] = {
            "rate": spread([p.rate for p in mine]),
            "p50_ms": spread([p.p50_ms for p in mine]),
            "p99_ms": spread([p.p99_ms for p in mine]),
            "server_cpu_ms_per_msg": spread([p.server_cpu_ms_per_msg for p in mine]),
            "not_250": sum(sum(p.not_250.values()) for p in mine),
        }
    ratios = []
    for r in sorted({p.round for p in peaks}):
        a, b = (next(p for p in peaks if p.round == r and p.server == n) for n in NAMES)
        ratios.append(b.rate / a.rate if a.rate else float("nan"))
    summary["ratio_per_round"] = ratios
    summary["ratio"] = spread(ratios)
    for half in halves:
        summary[f"half_{half.server}"] = dataclasses.asdict(half)
    return summary


def print_summary(summary: dict[str, Any]) -> None:
    print("peak (medians, min-max over rounds):")
    for name in NAMES:
        s = summary[name]
        print(f"  {name:7} {fmt(s['rate'])} msg/s, p50 {fmt(s['p50_ms'])} ms,"
              f" p99 {fmt(s['p99_ms'])} ms, server CPU {fmt(s['server_cpu_ms_per_msg'])}"
              f" ms/msg, not 250: {s['not_250']}")  # fmt: skip
    ratios = ", ".join(f"{r:.2f}" for r in summary["ratio_per_round"])
    print(f"  process/thread throughput ratio: {fmt(summary['ratio'], 2)} (rounds: {ratios})")
    for name in NAMES:
        half = summary.get(f"half_{name}")
        if half is not None:
            print(f"  half of the thread shape's peak, {name}: offered"
                  f" {half['offered_rate']:.1f} msg/s, achieved {half['rate']:.1f};"
                  f" MAIL->reply p50 {half['p50_ms']:.1f} ms,"
                  f" p99 {half['p99_ms']:.1f} ms")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--half-duration", type=float, default=10.0)
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--document-kb", type=int, default=100)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if not 1 <= args.rounds <= 20 or not 1.0 <= args.duration <= 120.0:
        parser.error("--rounds must be 1..20 and --duration 1..120")
    signal.signal(signal.SIGTERM, _stop_on_signal)
    command = shlex.join(getattr(sys, "orig_argv", [sys.executable, *sys.argv]))
    print(f"command: {command}", flush=True)
    peaks: list[Phase] = []
    halves: list[Phase] = []
    with tempfile.TemporaryDirectory(prefix="barid-bench-cw-") as tmp:
        work = Path(tmp)
        creds = make_demo(work / "d0")
        check_policy(work / "d0")
        shutil.copytree(work / "d0", work / "d1")
        messages = build_messages(creds["key_files"]["openpgp secret key"], args.messages,
                                  args.document_kb * 1024)  # fmt: skip
        load = Workload(0, client_tls(work / "d0" / "tls" / "cert.pem"), "minister@moh.gov.example",
                        creds["password"], messages, args.sessions)  # fmt: skip
        (work / "a").mkdir()
        (work / "b").mkdir()
        with (
            barid_server(work / "d0", work / "a", 0) as a,
            barid_server(work / "d1", work / "b", 1) as b,
        ):
            servers = (dataclasses.replace(a, name=NAMES[0]), dataclasses.replace(b, name=NAMES[1]))
            for server in servers:
                run_phase(server, load, "warmup", 0, 3.0)
            for rnd in range(1, args.rounds + 1):
                for server in servers if rnd % 2 else servers[::-1]:
                    peaks.append(run_phase(server, load, "peak", rnd, args.duration))
                    time.sleep(2.0)  # the other's delivery backlog settles a little
            if args.half_duration > 0:
                peak = statistics.median(p.rate for p in peaks if p.server == NAMES[0])
                for server in servers:
                    halves.append(run_phase(server, load, "half", 0, args.half_duration,
                                            rate=peak / 2))  # fmt: skip
    summary = summarise(peaks, halves)
    print_summary(summary)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({"command": command, "summary": summary,
                                       "phases": [dataclasses.asdict(p) for p in peaks + halves]},
                                      indent=2, default=str))  # fmt: skip
    print(f"summary written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

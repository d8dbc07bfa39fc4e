"""Benchmark of one gateway node against two, on the same PostgreSQL, behind HAProxy.

Prerequisites: PostgreSQL's server binaries (initdb, pg_ctl), Debian's `haproxy`
and `gpg`; the benchmark says which one is missing and exits 1.

Starts its own PostgreSQL on loopback (testkit/postgres.py: durability off, so
a commit costs no disk flush), makes the demo government on it (node A,
`barid demo --no-serve`; the policy's sender-rate rule raised as in
bench_submission, so that it never refuses), a second node B of the same
gateway (testkit/cluster.py `make_second_node`), and HAProxy in TCP mode in
front of both (PROXY protocol v2, health checks every 200 ms). Then, for each
round, two phases with the same client, A/B alternated:

  one   node B stopped (SIGTERM), HAProxy sends everything to node A;
  two   node B running, HAProxy balances round-robin.

A phase: N SMTP sessions through HAProxy (STARTTLS + AUTH once per session)
send signed messages (bench_submission's builder) to three local recipients
back to back for `--duration` seconds (after 3 s of the same, not measured, and
its drain: a node just started warms up); then the phase waits until every copy is
delivered into its mailbox and every receipt made (the "drain"). Reported per
phase: accepted messages per second, latency (MAIL to the 250), delivered
messages per second end to end (accepted / (duration + drain)), and the CPU
seconds per message of each process tree: node A (with its parse process),
node B, PostgreSQL (postmaster and its backends), HAProxy and the client.
Medians of the rounds and the two/one ratio per round.

Run from the repository root:

    .venv/bin/python -m bench.bench_cluster [--rounds 3] [--duration 10]
        [--sessions 20] [--messages 100] [--document-kb 20]

A JSON summary is written to bench/results/cluster.json (git-ignored).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, text

from bench import cluster_cpu
from bench.bench_submission import (
    BENCH_RATE_LIMIT,
    SENDER,
    Workload,
    build_messages,
    client_tls,
    peak_phase,
    percentile,
)
from gateway.store.db import create_engine, session_factory
from gateway.store.models import DeliveryQueueEntry, Message, ReceiptJob
from testkit.cli import run_cli
from testkit.cluster import Node, make_first_node, make_second_node
from testkit.gateway import demo_credentials
from testkit.haproxy import find_haproxy, haproxy_server
from testkit.postgres import PgCluster, create_pg_database, postgres_cluster

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "cluster.json"
DRAIN_TIMEOUT = 600.0
SETTLE_SECONDS = 1.0  # for HAProxy's health checks to see a node go or come
WARMUP_SECONDS = 3.0  # sending before each phase, not measured (caches, the parse process)


def cannot_run(reason: str) -> None:
    raise SystemExit(f"cannot run: {reason}")


@dataclass
class Phase:
    mode: str  # one | two
    round: int
    seconds: float
    accepted: int
    rate: float
    p50_ms: float
    p99_ms: float
    drain_seconds: float
    delivered_rate: float
    not_250: dict[str, int]
    cpu_ms_per_msg: dict[str, float]
    load_average: float  # of the machine over the last minute, at the end of the phase


def raise_rate_limit(data: Path) -> None:
    policy = data / "policies.yaml"
    text, count = re.subn(r"(rate_per_hour:\s*\{\s*at_least:\s*)\d+", rf"\g<1>{BENCH_RATE_LIMIT}",
                          policy.read_text())  # fmt: skip
    if count != 1:
        raise SystemExit(f"expected one rate_per_hour condition in {policy}, found {count}")
    policy.write_text(text)


async def database_bytes(url: str) -> int:
    """The size of the benchmark's database (tables, indexes, TOAST)."""
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            size = await conn.scalar(text("SELECT pg_database_size(current_database())"))
            return int(size or 0)
    finally:
        await engine.dispose()


async def drain(url: str, limit: float = DRAIN_TIMEOUT) -> float:
    """Seconds until nothing is left to deliver and no receipt is pending."""
    engine = create_engine(url)
    start = time.perf_counter()
    try:
        sessions = session_factory(engine)
        while time.perf_counter() - start < limit:
            async with sessions() as s:
                queued = await s.scalar(
                    select(func.count())
                    .select_from(DeliveryQueueEntry)
                    .where(DeliveryQueueEntry.state != "delivered")
                )
                pending = await s.scalar(
                    select(func.count()).select_from(ReceiptJob).where(ReceiptJob.state != "done")
                )
            if not queued and not pending:
                return time.perf_counter() - start
            await asyncio.sleep(0.1)
    finally:
        await engine.dispose()
    raise SystemExit(f"deliveries did not finish in {limit:.0f}s")


async def message_count(url: str) -> int:
    engine = create_engine(url)
    try:
        async with session_factory(engine)() as s:
            return int(await s.scalar(select(func.count()).select_from(Message)) or 0)
    finally:
        await engine.dispose()


def run_phase(mode: str, rnd: int, load: Workload, url: str, roots: dict[str, int],
              duration: float) -> Phase:  # fmt: skip
    before = cluster_cpu.snapshot(roots)
    samples, elapsed = asyncio.run(peak_phase(load, duration, lambda: 0.0))
    drained = asyncio.run(drain(url))
    used = cluster_cpu.delta(before, cluster_cpu.snapshot(roots))
    used["client"] = samples.client_cpu
    ok = max(samples.ok, 1)
    return Phase(mode, rnd, round(elapsed, 2), samples.ok, round(samples.ok / elapsed, 1),
                 round(percentile(samples.latencies, 50) * 1000, 1),
                 round(percentile(samples.latencies, 99) * 1000, 1), round(drained, 2),
                 round(samples.ok / (elapsed + drained), 1), dict(samples.replies),
                 {k: round(v * 1000 / ok, 2) for k, v in used.items()},
                 round(os.getloadavg()[0], 2))  # fmt: skip


def median_of(phases: list[Phase], mode: str, key: str) -> float:
    return round(float(statistics.median(getattr(p, key) for p in phases if p.mode == mode)), 2)


def summarise(phases: list[Phase]) -> dict[str, Any]:
    modes: dict[str, Any] = {}
    for mode in ("one", "two"):
        mine = [p for p in phases if p.mode == mode]
        keys = ("rate", "p50_ms", "p99_ms", "drain_seconds", "delivered_rate")
        modes[mode] = {key: median_of(phases, mode, key) for key in keys}
        modes[mode]["cpu_ms_per_msg"] = {
            name: round(statistics.median(p.cpu_ms_per_msg[name] for p in mine), 2)
            for name in mine[0].cpu_ms_per_msg
        }
    ratios = {
        key: [round(two.__dict__[key] / one.__dict__[key], 2)
              for one, two in zip(phases[0::2], phases[1::2], strict=True)]
        for key in ("rate", "delivered_rate")
    }  # fmt: skip
    return {"modes": modes, "ratios": ratios,
            "ratio_medians": {k: statistics.median(v) for k, v in ratios.items()}}  # fmt: skip


def print_summary(summary: dict[str, Any]) -> None:
    print("\nmode  accepted msg/s  p50 ms  p99 ms  drain s  delivered msg/s  CPU ms/msg")
    for mode, row in summary["modes"].items():
        cpu = ", ".join(f"{k} {v}" for k, v in row["cpu_ms_per_msg"].items())
        print(f"{mode:4}  {row['rate']:14}  {row['p50_ms']:6}  {row['p99_ms']:6}  "
              f"{row['drain_seconds']:7}  {row['delivered_rate']:15}  {cpu}")  # fmt: skip
    for key, values in summary["ratios"].items():
        print(f"two/one {key}: median {summary['ratio_medians'][key]} (rounds {values})")
    print(f"database growth: {summary['database_bytes_per_message']} bytes per message"
          f" of {summary['message_bytes_on_the_wire']} bytes on the wire"
          f" ({summary['messages_stored']} messages stored)")  # fmt: skip


def run(pg: PgCluster, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    url = pg.server.url(create_pg_database(pg.server, "bench"))
    first, second = work / "a", work / "b"
    make_first_node(first, url, "node-a")
    raise_rate_limit(first)
    run_cli(first, "cluster", "adopt-config")  # the raised policy is the cluster's
    make_second_node(first, second, "node-b", url)
    sender = demo_credentials(first)[SENDER]
    messages = build_messages(sender["key_files"]["openpgp secret key"], args.messages,
                              args.document_kb * 1024)  # fmt: skip
    a, b = Node(first), Node(second)
    size0 = asyncio.run(database_bytes(url))
    phases: list[Phase] = []
    try:
        a.launch()
        b.launch()
        a.wait_ready()
        b.wait_ready()
        backends = {"smtp": [("127.0.0.1", a.port), ("127.0.0.1", b.port)]}
        with haproxy_server(backends) as proxy:
            load = Workload(proxy.ports["smtp"], client_tls(first / "tls" / "cert.pem"), SENDER,
                            sender["password"], messages, args.sessions)  # fmt: skip
            roots = {"node-a": a.pid, "node-b": b.pid, "postgres":
                     cluster_cpu.postmaster_pid(pg.data), "haproxy": proxy.pid}  # fmt: skip
            for rnd in range(args.rounds):
                for mode in ("one", "two"):
                    b.stop() if mode == "one" else b.start()
                    roots["node-b"] = b.pid
                    time.sleep(SETTLE_SECONDS)
                    asyncio.run(peak_phase(load, WARMUP_SECONDS, lambda: 0.0))  # warm-up
                    asyncio.run(drain(url))
                    phases.append(run_phase(mode, rnd, load, url, roots, args.duration))
                    print(json.dumps(asdict(phases[-1])), flush=True)
        stored = sum(p.accepted for p in phases)  # plus the warm-ups, counted below
        grown = asyncio.run(database_bytes(url)) - size0
        in_database = asyncio.run(message_count(url))
    finally:
        b.stop()
        a.stop()
    summary = summarise(phases)
    summary["database_bytes_per_message"] = round(grown / max(in_database, 1))
    summary["messages_stored"] = in_database
    summary["message_bytes_on_the_wire"] = round(statistics.mean(len(m) for m in messages))
    summary["messages_measured"] = stored
    return {"phases": [asdict(p) for p in phases], "summary": summary}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="Rounds of one-node/two-node phases.")
    parser.add_argument("--duration", type=float, default=10.0, help="Seconds sending per phase.")
    parser.add_argument("--sessions", type=int, default=20, help="Concurrent SMTP sessions.")
    parser.add_argument("--messages", type=int, default=100, help="Distinct messages pre-built.")
    parser.add_argument("--document-kb", type=int, default=20, help="Signed document size (KiB).")
    parser.add_argument("--output", type=Path, default=RESULTS, help="JSON summary file.")
    args = parser.parse_args(argv)
    if not 1 <= args.rounds <= 20 or not 1.0 <= args.duration <= 120.0:
        parser.error("--rounds must be 1..20 and --duration 1..120")
    if find_haproxy() is None:
        cannot_run("haproxy is not installed (Debian: apt-get install haproxy)")
    if shutil.which("gpg") is None:
        cannot_run("gpg is not installed (Debian: apt-get install gnupg)")
    work = Path(tempfile.mkdtemp(prefix="bclu", dir="/tmp"))
    try:
        with postgres_cluster(on_missing=cannot_run) as pg:
            result = run(pg, args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result["command"] = " ".join(["python -m bench.bench_cluster", *(argv or sys.argv[1:])])
    result["postgres"] = pg.version()
    print_summary(result["summary"])
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

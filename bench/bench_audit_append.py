"""Benchmark of audited transactions on PostgreSQL: N concurrent appenders.

A chained append locks the single `audit_head` row until its transaction
commits, which serialises audited transactions cluster-wide; on PostgreSQL
`append_many` stages its events instead when the head is held. This measures
both: N appenders (asyncio tasks, split
over `--nodes` engines as gateway nodes would be) each run transactions that
append one "message.access" event (an IMAP body fetch's access record) and then
spend `--hold-ms` on other work before committing (the lock is held meanwhile).
Reported per concurrency: events/s and the p50/p99 latency of one transaction,
the median of `--runs` runs; the chain is verified at the end.

`--mode locked` appends with `audit.append`, which always waits for the head
(what every append did before events could be staged); `--mode staged` (the
default) with `audit.append_many`, the hot paths' call, which on PostgreSQL
stages its event when another transaction holds the head (the linker is then
run once and the chain verified: every event chained, none lost).

Run from the repository root (starts its own PostgreSQL on loopback; its
durability is off, so commits cost no disk flush and the locking is what is left):

    .venv/bin/python -m bench.bench_audit_append [--concurrency 1,4,16] [--seconds 5]
        [--runs 3] [--nodes 2] [--hold-ms 0] [--mode staged|locked]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.store import audit, migrate
from gateway.store.db import create_engine, session_factory, transaction
from testkit.postgres import PgServer, create_pg_database, postgres_cluster

KEY = os.urandom(32)
DETAILS = {"trace": "abcd", "protocol": "imap", "client": "192.0.2.7"}


@dataclass(frozen=True)
class Run:
    concurrency: int
    events: int
    seconds: float
    p50_ms: float
    p99_ms: float

    @property
    def rate(self) -> float:
        return self.events / self.seconds


def no_postgres(reason: str) -> None:
    raise SystemExit(f"cannot run: {reason}")


async def locked(session: AsyncSession, actor: str) -> None:
    await audit.append(
        session, KEY, actor=actor, action="message.access", target="MOH/2026/000001",
        details=DETAILS,
    )  # fmt: skip


async def staged(session: AsyncSession, actor: str) -> None:
    event = audit.Event(actor, "message.access", "MOH/2026/000001", details=DETAILS)
    await audit.append_many(session, KEY, [event])


async def appender(
    sessions: async_sessionmaker[AsyncSession], n: int, until: float, hold: float, mode: str
) -> list[float]:
    latencies: list[float] = []
    append = locked if mode == "locked" else staged
    while time.perf_counter() < until:
        start = time.perf_counter()
        async with transaction(sessions) as session:
            await append(session, f"clerk{n}@moh.gov.example")
            if hold:
                await asyncio.sleep(hold)
        latencies.append(time.perf_counter() - start)
    return latencies


async def one_run(
    url: str, concurrency: int, nodes: int, seconds: float, hold: float, mode: str
) -> Run:
    engines = [create_engine(url, pool_size=concurrency) for _ in range(nodes)]
    try:
        factories = [session_factory(engine) for engine in engines]
        until = time.perf_counter() + seconds
        began = time.perf_counter()
        results = await asyncio.gather(
            *(appender(factories[n % nodes], n, until, hold, mode) for n in range(concurrency))
        )
        elapsed = time.perf_counter() - began
    finally:
        for engine in engines:
            await engine.dispose()
    latencies = sorted(x for result in results for x in result)
    return Run(
        concurrency,
        len(latencies),
        elapsed,
        statistics.median(latencies) * 1000,
        latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
    )


async def verify(url: str) -> int:
    """Chain what is staged (as the gateway's linker does), verify; events chained."""
    engine = create_engine(url)
    try:
        async with transaction(session_factory(engine)) as session:
            await audit.link_pending(session, KEY)
        async with session_factory(engine)() as session:
            report = await audit.verify(session, KEY)
    finally:
        await engine.dispose()
    if not report.ok:
        raise SystemExit(f"chain broken: {report.problems[:3]}")
    return report.events - report.staged


async def prepare(url: str) -> None:
    engine = create_engine(url)
    try:
        await migrate.upgrade(engine)
    finally:
        await engine.dispose()


def bench(server: PgServer, args: argparse.Namespace) -> None:
    levels = [int(x) for x in args.concurrency.split(",")]
    print(
        f"audit appends ({args.mode}) on PostgreSQL: {args.nodes} engine(s),"
        f" {args.seconds:g} s per run,"
        f" hold {args.hold_ms:g} ms, median of {args.runs} runs"
    )
    print(f"{'appenders':>9} {'events/s':>10} {'p50 ms':>8} {'p99 ms':>8}")
    for level in levels:
        runs = []
        for _ in range(args.runs):
            url = server.url(create_pg_database(server, "auditbench"))
            asyncio.run(prepare(url))
            runs.append(
                asyncio.run(
                    one_run(url, level, args.nodes, args.seconds, args.hold_ms / 1000, args.mode)
                )
            )
            chained = asyncio.run(verify(url))
            if chained != runs[-1].events:
                raise SystemExit(f"{runs[-1].events} events appended, {chained} in the chain")
        rate = statistics.median(r.rate for r in runs)
        p50 = statistics.median(r.p50_ms for r in runs)
        p99 = statistics.median(r.p99_ms for r in runs)
        print(f"{level:>9} {rate:>10.0f} {p50:>8.2f} {p99:>8.2f}", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", default="1,4,16")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--nodes", type=int, default=2)
    parser.add_argument("--hold-ms", type=float, default=0.0)
    parser.add_argument("--mode", choices=("staged", "locked"), default="staged")
    args = parser.parse_args(argv)
    with postgres_cluster(no_postgres) as cluster:
        bench(cluster.server, args)


if __name__ == "__main__":
    main(sys.argv[1:])

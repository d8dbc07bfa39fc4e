"""Benchmark of audited transactions on PostgreSQL: N concurrent appenders.

Every audited transaction appends its event to the keyed hash chain and so locks
the single `audit_head` row until it commits: audited transactions are serialised
cluster-wide. This measures what that costs: N appenders (asyncio tasks, split
over `--nodes` engines as gateway nodes would be) each run transactions that
append one "message.access" event (an IMAP body fetch's access record) and then
spend `--hold-ms` on other work before committing (the lock is held meanwhile).
Reported per concurrency: events/s and the p50/p99 latency of one transaction,
the median of `--runs` runs; the chain is verified at the end.

`--mode unchained` measures the append path of a design without the head lock
instead: the same event inserted with its id from a sequence and a MAC of the
event alone (as an unsealed event would be, before a sealer links it into the
chain). The gateway does not append so today; this is the upper bound such a
design would reach (the sealing itself is not measured).

Run from the repository root (starts its own PostgreSQL on loopback; its
durability is off, so commits cost no disk flush and the lock is what is left):

    .venv/bin/python -m bench.bench_audit_append [--concurrency 1,4,16] [--seconds 5]
        [--runs 3] [--nodes 2] [--hold-ms 0] [--mode chained|unchained]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import os
import statistics
import sys
import time
from dataclasses import dataclass

from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.store import audit, migrate
from gateway.store.db import create_engine, session_factory, transaction, utcnow
from gateway.store.models import AuditEvent
from testkit.postgres import PgServer, create_pg_database, postgres_cluster

KEY = os.urandom(32)
SEQUENCE = "bench_audit_event_ids"
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


async def chained(session: AsyncSession, actor: str) -> None:
    await audit.append(
        session, KEY, actor=actor, action="message.access", target="MOH/2026/000001",
        details=DETAILS,
    )  # fmt: skip


async def unchained(session: AsyncSession, actor: str) -> None:
    """The event alone: a sequence id, no head lock, a MAC over the event only."""
    event_id = int((await session.execute(text(f"SELECT nextval('{SEQUENCE}')"))).scalar_one())
    at, details = utcnow(), audit.canonical_details(DETAILS)
    mac = hmac.new(KEY, repr((event_id, at, actor, details)).encode(), hashlib.sha256)
    await session.execute(insert(AuditEvent).values(
        id=event_id, at=at, actor=actor, action="message.access", target="MOH/2026/000001",
        outcome="ok", details=details, prev_mac="", mac=mac.hexdigest(), node=audit.node(),
    ))  # fmt: skip


async def appender(
    sessions: async_sessionmaker[AsyncSession], n: int, until: float, hold: float, mode: str
) -> list[float]:
    latencies: list[float] = []
    append = chained if mode == "chained" else unchained
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
    engine = create_engine(url)
    try:
        async with session_factory(engine)() as session:
            report = await audit.verify(session, KEY)
    finally:
        await engine.dispose()
    if not report.ok:
        raise SystemExit(f"chain broken: {report.problems[:3]}")
    return report.events


async def prepare(url: str) -> None:
    engine = create_engine(url)
    try:
        await migrate.upgrade(engine)
        async with engine.begin() as conn:
            await conn.execute(text(f"CREATE SEQUENCE {SEQUENCE} START 1000000"))
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
            if args.mode == "chained":
                asyncio.run(verify(url))
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
    parser.add_argument("--mode", choices=("chained", "unchained"), default="chained")
    args = parser.parse_args(argv)
    with postgres_cluster(no_postgres) as cluster:
        bench(cluster.server, args)


if __name__ == "__main__":
    main(sys.argv[1:])

"""Acceptance throughput: a 100 KB original with 3 recipients, sequential and 20 at a time.

Prints accepts per second (run with -s to see them) and asserts that every accept
got a registry number of its own; the rate itself is no assertion (a loaded machine
decides it: performance is measured by bench/, not by tests). The suite's
PostgreSQL runs with fsync off, so its figures exclude disk flushes.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from testkit.store import stamper, store_env, submission

TOTAL = 100
CONCURRENCY = 20
ORIGINAL_BYTES = 100 * 1024


@pytest.mark.parametrize("pool_size", [5, CONCURRENCY + 1])
async def test_accepts_per_second(db_url: str, pool_size: int) -> None:
    backend = db_url.split("+", 1)[0]
    async with store_env(db_url, pool_size=pool_size) as env:
        subs = [submission(size=ORIGINAL_BYTES, n_recipients=3) for _ in range(2 * TOTAL)]
        assert all(len(s.raw) >= ORIGINAL_BYTES - 300 for s in subs)
        started = time.perf_counter()
        registries = [
            (await env.store.accept(sub, stamper(sub)[1], actor="bench")).registry
            for sub in subs[:TOTAL]
        ]
        sequential = TOTAL / (time.perf_counter() - started)

        started = time.perf_counter()
        rest = subs[TOTAL:]
        for i in range(0, TOTAL, CONCURRENCY):
            batch = rest[i : i + CONCURRENCY]
            accepted = await asyncio.gather(
                *(env.store.accept(s, stamper(s)[1], actor="bench") for s in batch)
            )
            registries += [a.registry for a in accepted]
        concurrent = TOTAL / (time.perf_counter() - started)
    print(
        f"\n[throughput] {backend}: sequential {sequential:.0f}/s,"
        f" {CONCURRENCY} concurrent {concurrent:.0f}/s"
        f" ({TOTAL} accepts of {ORIGINAL_BYTES // 1024} KB, 3 recipients, pool {pool_size})"
    )
    assert len(set(registries)) == 2 * TOTAL

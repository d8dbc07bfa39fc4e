"""Cluster-wide counters (gateway/store/counters.py) under the login throttle and the
verification radar, on SQLite and on a real PostgreSQL: the same rules as in
memory; two "nodes" (two engines on one database, each with its own throttle or
radar) share one limit; keys are stored hashed; a reset and pruning work."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from gateway.intake.smtp.throttle import LoginThrottle, ThrottleRules
from gateway.store import migrate
from gateway.store.counters import PRUNE_EVERY, LoginFailureCounters, SharedCounters
from gateway.store.db import create_engine, session_factory
from gateway.store.models import EdgeCounter
from gateway.verification.radar import Alert, Radar, RadarLimits
from gateway.verification.radar_windows import SharedWindows
from testkit.throttle_rules import check_throttle_rules

KEY = os.urandom(32)
RULES = ThrottleRules(per_pair=3, per_address=10, per_account=100)


@dataclass
class Nodes:
    engines: list[AsyncEngine]
    sessions: list[async_sessionmaker[AsyncSession]]

    def throttle(self, node: int, rules: ThrottleRules = RULES) -> LoginThrottle:
        counters = SharedCounters(self.sessions[node], KEY)
        return LoginThrottle(rules, LoginFailureCounters(counters, rules.window))

    def radar(self, node: int, limits: RadarLimits, now: list[float]) -> Radar:
        windows = SharedWindows(SharedCounters(self.sessions[node], KEY))
        return Radar(limits, clock=lambda: now[0], windows=windows)

    async def rows(self) -> list[EdgeCounter]:
        async with self.sessions[0]() as session:
            return list((await session.scalars(select(EdgeCounter))).all())


@pytest.fixture
async def nodes(db_url: str) -> AsyncIterator[Nodes]:
    """Two engines on one database: two gateway nodes as far as counts go."""
    engines = [create_engine(db_url), create_engine(db_url)]
    await migrate.upgrade(engines[0])
    try:
        yield Nodes(engines, [session_factory(e) for e in engines])
    finally:
        for engine in engines:
            await engine.dispose()


async def test_the_rules_hold_over_database_counters(nodes: Nodes) -> None:
    await check_throttle_rules(lambda rules: nodes.throttle(0, rules))


async def test_a_limit_of_n_holds_across_two_nodes(nodes: Nodes) -> None:
    a, b = nodes.throttle(0), nodes.throttle(1)
    now = 1_000_000.0
    for n in range(RULES.per_pair):  # N failures, spread over both nodes
        node = (a, b)[n % 2]
        assert not (await node.check("User@moh.gov", "192.0.2.7", now + n)).refuse
        await node.failed("User@moh.gov", "192.0.2.7", now + n)
    # The N+1st attempt is throttled on either node.
    assert (await a.check("user@moh.gov", "192.0.2.7", now + 5)).refuse
    assert (await b.check("user@moh.gov", "192.0.2.7", now + 5)).refuse
    assert not (await b.check("user@moh.gov", "192.0.2.8", now + 5)).refuse
    # A right password on node A resets the pair for node B too; the address is known.
    verdict = await a.check("user@moh.gov", "192.0.2.9", now + 6)
    await a.succeeded("user@moh.gov", "192.0.2.7", now + 6, pair_failures=3)
    assert not (await b.check("user@moh.gov", "192.0.2.7", now + 7)).refuse
    assert await b.known("user@moh.gov", "192.0.2.7", now + 7)
    assert not await b.known("user@moh.gov", "192.0.2.9", now + 7)
    assert verdict.pair_failures == 0
    # Another right password from there, without failures: no write at all.
    before = [(r.kind, r.key_hash, r.window_start, r.hits) for r in await nodes.rows()]
    await a.succeeded("user@moh.gov", "192.0.2.7", now + 8, pair_failures=0)
    assert [(r.kind, r.key_hash, r.window_start, r.hits) for r in await nodes.rows()] == before
    # Nothing in clear: neither the login nor the address.
    rows = await nodes.rows()
    assert rows and all(len(r.key_hash) == 64 for r in rows)
    stored = " ".join(f"{r.kind} {r.key_hash}" for r in rows)
    assert "moh" not in stored and "192.0.2" not in stored


async def test_old_windows_are_pruned(nodes: Nodes) -> None:
    throttle = nodes.throttle(0)
    await throttle.failed("old@moh.gov", "192.0.2.1", 1_000_000.0)
    later = 1_000_000.0 + RULES.window * 3 + PRUNE_EVERY
    await throttle.failed("new@moh.gov", "192.0.2.2", later)
    kinds = sorted(r.kind for r in await nodes.rows())
    assert kinds == ["login-acct", "login-addr", "login-pair"]  # only the new failure's


async def test_the_radar_throttles_and_alerts_once_across_two_nodes(nodes: Nodes) -> None:
    now = [1_200_000.0]  # a multiple of 600: the windows are aligned
    limits = RadarLimits(failures=3, per_minute=4, forgery_spike=5)
    a, b = nodes.radar(0, limits, now), nodes.radar(1, limits, now)
    alerts: list[Alert] = []
    for n in range(3):
        observed = await (a, b)[n % 2].observe("198.51.100.1", "token", "forged")
        assert observed.retry_after is None
        alerts += observed.alerts
    assert not await a.throttled("198.51.100.1")  # 3 failures: at the limit, not over
    refused = await b.observe("198.51.100.1", "token", "unknown")
    assert refused.retry_after == 600  # until the aligned window ends
    assert await b.throttled("198.51.100.1")
    assert (await a.observe("198.51.100.2", "token", "forged")).retry_after is None
    # The forgery spike (more than 5 in the window) is raised by one node only.
    for n in range(6):
        alerts += (await (a, b)[n % 2].observe(f"198.51.100.{n + 10}", "token", "forged")).alerts
    assert [x.kind for x in alerts] == ["forgery-spike"] and alerts[0].count == 6
    # The per-minute ceiling is shared too.
    for n in range(4):
        assert await (a, b)[n % 2].check("203.0.113.5", "token") is None
    assert await a.check("203.0.113.5", "token") == 60
    now[0] += 600
    assert not await a.throttled("198.51.100.1")

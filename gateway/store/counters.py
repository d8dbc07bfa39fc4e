"""Cluster-wide counters in the database: windows of hits per (kind, key).

Owns: the `edge_counters` table (models.EdgeCounter): incrementing a window with
one upsert (INSERT .. ON CONFLICT DO UPDATE .. RETURNING, on SQLite and
PostgreSQL alike, so two nodes incrementing at once both get a distinct count),
reading the hits of recent windows, forgetting a key, and pruning windows older
than their kind's retention (at most once a minute per instance, inside an
increment). Keys are stored as an HMAC-SHA256 of (kind, key) under a subkey of
the master key: no client address, login or registry number in clear.

Two shapes of window: `bump_fixed` counts in windows aligned to multiples of
their length (the verification radar: every node agrees which window a moment
belongs to); `bump_sliding` counts in buckets of 1/`SLIDING_BUCKETS` of the
window and sums the buckets that overlap the last `window` seconds (the login
throttle: a sliding window, late by at most one bucket).

Must not: decide anything (gateway.intake.smtp.throttle and
gateway.verification.radar hold the rules). Failure behaviour: database errors
propagate to the caller, which decides whether to fail open or closed.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from collections.abc import Iterable, Sequence

from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.store.db import writing

COUNTER_KEY_PURPOSE = "edge-counters"  # HKDF purpose of the key hashing subkey
SLIDING_BUCKETS = 15
PRUNE_EVERY = 60.0  # seconds between two prunes by one instance

_UPSERT = text(
    "INSERT INTO edge_counters (kind, key_hash, window_start, hits)"
    " VALUES (:kind, :key, :start, :step)"
    " ON CONFLICT (kind, key_hash, window_start)"
    " DO UPDATE SET hits = edge_counters.hits + :step"
    " RETURNING hits"
)
# The keyed hash covers the kind, so the hash alone names a counter.
_SUMS = text(
    "SELECT key_hash, SUM(hits) FROM edge_counters"
    " WHERE key_hash IN :keys AND window_start > :after GROUP BY key_hash"
).bindparams(bindparam("keys", expanding=True))
_GET = text(
    "SELECT COALESCE(SUM(hits), 0) FROM edge_counters"
    " WHERE kind = :kind AND key_hash = :key AND window_start = :start"
)
_FORGET = text("DELETE FROM edge_counters WHERE kind = :kind AND key_hash = :key")
_PRUNE = text("DELETE FROM edge_counters WHERE kind = :kind AND window_start < :before")


def bucket_length(window: float) -> int:
    """Seconds per bucket of a sliding window (at least 1)."""
    return max(1, int(window // SLIDING_BUCKETS))


class SharedCounters:
    """Counters every node sharing the database sees (see the module docstring)."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        key: bytes,
    ) -> None:
        self._sessions = sessions
        self._key = key
        self._retention: dict[str, float] = {}
        self._pruned_at = -math.inf

    def key_hash(self, kind: str, key: str) -> str:
        message = kind.encode() + b"\0" + key.encode("utf-8", "surrogatepass")
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def _keep(self, kind: str, seconds: float) -> None:
        self._retention[kind] = max(self._retention.get(kind, 0.0), seconds)

    async def bump_fixed(self, kind: str, key: str, now: float, length: float) -> tuple[int, float]:
        """Count one hit in the aligned window of `length` seconds holding `now`:
        (hits in it now, seconds until it ends)."""
        start = int(now // length * length)
        self._keep(kind, 2 * length)
        hits = await self._upsert([(kind, key, start)], now)
        return hits[0], start + length - now

    async def bump_sliding(
        self, items: Sequence[tuple[str, str]], now: float, window: float
    ) -> list[int]:
        """Count one hit for each (kind, key): the hits of each in the last `window`."""
        size = bucket_length(window)
        start = int(now // size * size)
        for kind, _ in items:
            self._keep(kind, window + 2 * size)
        await self._upsert([(kind, key, start) for kind, key in items], now)
        return await self.recent(items, now, window)

    async def recent(
        self, items: Iterable[tuple[str, str]], now: float, window: float
    ) -> list[int]:
        """Hits of each (kind, key) in buckets overlapping the last `window` seconds
        (one query)."""
        hashes = [self.key_hash(kind, key) for kind, key in items]
        after = now - window - bucket_length(window)
        async with self._sessions() as session:
            rows = await session.execute(_SUMS, {"keys": hashes, "after": after})
            found = {key_hash: int(hits) for key_hash, hits in rows}
        return [found.get(h, 0) for h in hashes]

    async def current_fixed(self, kind: str, key: str, now: float, length: float) -> int:
        """Hits in the aligned window holding `now` (no change)."""
        start = int(now // length * length)
        async with self._sessions() as session:
            row = await session.execute(
                _GET, {"kind": kind, "key": self.key_hash(kind, key), "start": start}
            )
            return int(row.scalar_one())

    async def mark(self, kind: str, key: str, now: float, granularity: float, keep: float) -> None:
        """Record that (kind, key) was seen around `now` (one row per `granularity`),
        remembered for `keep` seconds."""
        self._keep(kind, keep)
        await self._upsert([(kind, key, int(now // granularity * granularity))], now)

    async def seen(self, kind: str, key: str, now: float, keep: float) -> bool:
        return (await self.recent([(kind, key)], now, keep))[0] > 0

    async def forget(self, kind: str, key: str) -> None:
        async with writing(self._sessions) as session:
            await session.execute(_FORGET, {"kind": kind, "key": self.key_hash(kind, key)})

    async def _upsert(self, rows: list[tuple[str, str, int]], now: float) -> list[int]:
        async with writing(self._sessions) as session:
            hits = []
            for kind, key, start in rows:
                result = await session.execute(
                    _UPSERT,
                    {"kind": kind, "key": self.key_hash(kind, key), "start": start, "step": 1},
                )
                hits.append(int(result.scalar_one()))
            if now - self._pruned_at >= PRUNE_EVERY:
                self._pruned_at = now
                for kind, keep in self._retention.items():
                    await session.execute(_PRUNE, {"kind": kind, "before": int(now - keep)})
            return hits


KNOWN_KEEP = 90 * 86400.0  # an address an account logged in from stays known this long
KNOWN_GRANULARITY = 86400.0  # one "known" row per account, address and day
MAX_KNOWN_CACHE = 100_000
_LOGIN_KINDS = {"p": "login-pair", "c": "login-addr", "a": "login-acct"}


class LoginFailureCounters:
    """gateway.intake.smtp.throttle's `FailureCounters` in the database: every node
    counts the same failures. The addresses an account logged in from are marked
    once a day per node and address (a cache spares the write otherwise)."""

    def __init__(self, counters: SharedCounters, window: float) -> None:
        self._counters = counters
        self._window = window
        self._marked: dict[tuple[str, str], int] = {}

    @staticmethod
    def _item(key: str) -> tuple[str, str]:
        prefix, _, rest = key.partition(":")
        return _LOGIN_KINDS[prefix], rest

    async def recent(self, keys: Sequence[str], now: float) -> list[int]:
        return await self._counters.recent([self._item(k) for k in keys], now, self._window)

    async def add(self, keys: Sequence[str], now: float) -> list[int]:
        return await self._counters.bump_sliding([self._item(k) for k in keys], now, self._window)

    async def forget(self, key: str) -> None:
        await self._counters.forget(*self._item(key))

    async def known(self, account: str, address: str, now: float) -> bool:
        if (account, address) in self._marked:
            return True
        return await self._counters.seen("login-known", f"{account}\0{address}", now, KNOWN_KEEP)

    async def remember(self, account: str, address: str, now: float) -> None:
        day = int(now // KNOWN_GRANULARITY)
        if self._marked.get((account, address)) == day:
            return
        await self._counters.mark(
            "login-known", f"{account}\0{address}", now, KNOWN_GRANULARITY, KNOWN_KEEP
        )
        if len(self._marked) >= MAX_KNOWN_CACHE:
            self._marked.clear()
        self._marked[(account, address)] = day

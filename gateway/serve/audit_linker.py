"""The audit linker of `barid serve` (PostgreSQL): staged events into the chain.

Owns: waking every LINK_SECONDS and, when this node wins the election (a
transaction-scoped `pg_try_advisory_xact_lock`, so one node of the cluster
links at a time and the others skip the round), chaining the events staged
while another transaction held the audit head (gateway.store.audit_pending).
Any append that finds the head free links them too; this covers the quiet
moments. Must not: stop the gateway when it fails (it logs the error class and
tries again at the next wake). SQLite stages nothing: the task is not started.
"""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.store import audit
from gateway.store.db import transaction
from gateway.store.queue import shares_work

log = logging.getLogger("barid.audit")
LINK_SECONDS = 1.0
ELECTION_KEY = 0x62617269_64000001  # pg_try_advisory_xact_lock key of the linker


class AuditLinker:
    """Start with `start()`, stop with `await stop()`; `await tick()` does one round."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        audit_key: bytes,
        *,
        link_seconds: float = LINK_SECONDS,
    ) -> None:
        self._sessions = sessions
        self._audit_key = audit_key
        self._link_seconds = link_seconds
        self._task: asyncio.Task[None] | None = None

    async def tick(self) -> int:
        """Chain the staged events when this node is elected: how many."""
        async with transaction(self._sessions) as session:
            elected = await session.scalar(
                text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": ELECTION_KEY}
            )
            if not elected:
                return 0
            return await audit.link_pending(session, self._audit_key)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._link_seconds)
            try:
                await self.tick()
            except Exception as exc:  # never the gateway's end; class only (no SQL text)
                log.warning("linking staged audit events failed (%s)", type(exc).__name__)

    def start(self) -> None:
        if shares_work(self._sessions) and self._task is None:
            self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

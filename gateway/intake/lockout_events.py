"""Lockout events: every login limit crossed becomes an "auth.lockout" audit event.

Owns: writing them off the login path (a login reply never waits for the audit
trail), and rate-limiting them so an attacker cannot flood the chain: at most
`EVENTS_PER_MINUTE` a minute, the number left out carried in the next event's
details. Must not: decide lockouts (gateway.intake.smtp.throttle) or log secrets.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway import metrics
from gateway.alerts import kinds
from gateway.intake.smtp.throttle import Lockout
from gateway.store import audit
from gateway.store.db import writing

log = logging.getLogger("barid.auth")

LOCKOUT_ACTION = kinds.LOCKOUT_ACTION
LOCKOUT_ACTOR = "login-throttle"
EVENTS_PER_MINUTE = 20

LockoutSink = Callable[[Lockout, str, int], Awaitable[None]]  # lockout, protocol, left out


class LockoutEvents:
    """Hands lockouts to the sink in background tasks, at a bounded rate."""

    def __init__(
        self, sink: LockoutSink | None, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._sink = sink
        self._clock = clock
        self._window_start = -60.0
        self._written = 0
        self._left_out = 0
        self._tasks: set[asyncio.Task[None]] = set()

    def report(self, lockouts: list[Lockout], protocol: str) -> None:
        for lockout in lockouts:
            metrics.AUTH_LOCKOUTS.labels(lockout.kind).inc()
            log.warning(
                "login limit crossed", extra={"kind": lockout.kind, "peer": lockout.address}
            )
            if self._sink is None:
                continue
            now = self._clock()
            if now - self._window_start >= 60.0:
                self._window_start, self._written = now, 0
            if self._written >= EVENTS_PER_MINUTE:
                self._left_out += 1
                continue
            self._written += 1
            left_out, self._left_out = self._left_out, 0
            task = asyncio.create_task(self._write(lockout, protocol, left_out))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _write(self, lockout: Lockout, protocol: str, left_out: int) -> None:
        assert self._sink is not None
        try:
            await self._sink(lockout, protocol, left_out)
        except Exception as exc:
            log.error("lockout event not recorded", extra={"error": type(exc).__name__})
        else:
            metrics.ALERTS.labels(kinds.AlertKind.LOGIN_LOCKOUT.value).inc()

    async def drain(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


def audit_lockouts(sessions: async_sessionmaker[AsyncSession], key: bytes) -> LockoutSink:
    """A sink appending "auth.lockout" events (outcome "lockout") to the audit trail."""

    async def write(lockout: Lockout, protocol: str, left_out: int) -> None:
        details: dict[str, object] = {
            "kind": lockout.kind,
            "failures": lockout.failures,
            "protocol": protocol,
        }
        if lockout.address:
            details["client"] = lockout.address
        if left_out:
            details["events_left_out"] = left_out
        async with writing(sessions) as session:
            await audit.append(
                session,
                key,
                actor=LOCKOUT_ACTOR,
                action=LOCKOUT_ACTION,
                target=lockout.account,
                outcome="lockout",
                details=details,
            )

    return write

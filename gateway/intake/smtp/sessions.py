"""What all sessions of a group of SMTP listeners share: limits, slots, memory, the stop.

Owns: `SessionLimits` (timeouts, the minimum data rate, spooling), `SmtpShared`
(the slot table, the in-flight budget, the set of open sessions) and the
graceful stop: idle sessions are told `421 4.3.2` at once, busy ones when their
command ends, the rest when the grace period is over. Must not: parse SMTP.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from gateway.intake.smtp.slots import InflightBudget, SlotTable
from gateway.model import replies

SETTLE_SECONDS = 1.0  # after the grace period, for the last replies to be written


@dataclass(frozen=True)
class SessionLimits:
    """Per-session limits; the defaults are `gateway.config`'s."""

    idle_timeout: float = 300.0  # RFC 5321 §4.5.3.2.7, between commands
    command_timeout: float = 60.0  # from a command's first octet to its CRLF
    data_timeout: float = 1800.0  # from 354 to the end of data
    min_data_rate: int = 1024  # octets per second, averaged over each window
    rate_window: float = 30.0
    tls_handshake_timeout: float = 15.0
    spool_threshold: int = 1 << 20  # message bytes kept in memory before spooling
    spool_dir: Path | None = None  # None: never spool (everything in memory)
    bare_lf_limit: int = 3  # commands ending in a bare LF before the session is closed
    line_rule: bool = True  # refuse lines over 998 octets (off on the transfer port)


class Session(Protocol):
    busy: bool

    def say_goodbye(self, reply: str) -> None:
        """Write `reply` and close (nothing if already closing)."""
        ...


@dataclass
class SmtpShared:
    slots: SlotTable
    budget: InflightBudget
    limits: SessionLimits = SessionLimits()
    sessions: set[Session] = field(default_factory=set)
    stopping: bool = False
    _empty: asyncio.Event = field(default_factory=asyncio.Event)

    async def shutdown(self, grace: float) -> None:
        """Tell idle sessions 421 4.3.2 now; give busy ones `grace` seconds, then cut."""
        self.stopping = True
        for session in list(self.sessions):
            if not session.busy:
                session.say_goodbye(replies.SHUTTING_DOWN)
        await self._all_closed(grace)
        for session in list(self.sessions):
            session.say_goodbye(replies.SHUTTING_DOWN)
        await self._all_closed(SETTLE_SECONDS)

    def add(self, session: Session) -> None:
        self.sessions.add(session)
        self._empty.clear()

    def remove(self, session: Session) -> None:
        self.sessions.discard(session)
        if not self.sessions:
            self._empty.set()

    async def _all_closed(self, seconds: float) -> None:
        if not self.sessions:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._empty.wait()


def shared_for(
    *, max_connections: int, per_address: int, budget_bytes: int, limits: SessionLimits
) -> SmtpShared:
    return SmtpShared(SlotTable(max_connections, per_address), InflightBudget(budget_bytes), limits)

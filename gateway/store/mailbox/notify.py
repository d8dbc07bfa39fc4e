"""Change notices for mailboxes: in-process events, and PostgreSQL LISTEN/NOTIFY
so that several gateway nodes sharing one database wake each other's IDLE clients.

Owns: waiting for "mailbox N changed" and announcing it. Must not: carry data (a
notice only says "look again"; the store is the truth), so a lost notice costs
at most `POLL_SECONDS` of delay, never a lost message.

Contract: `changed(ids)` wakes local waiters at once (call it after the commit);
`publish_in(session, ids)` adds `pg_notify` to an open PostgreSQL transaction,
delivered by PostgreSQL only if and when it commits; `listen(engine)` keeps one
connection LISTENing (reconnecting after failures; gateway.store.notices) and
turns notices from any node into local wake-ups. `wait(id, timeout)` returns
when the mailbox may have changed or the timeout passed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Iterator

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from gateway.store.notices import PgListener

log = logging.getLogger("barid.mailbox")

CHANNEL = "barid_mailbox"
POLL_SECONDS = 30.0
MAX_PAYLOAD_IDS = 500  # pg_notify payloads are limited to 8000 bytes


class MailboxNotifier:
    def __init__(self) -> None:
        self._waiters: dict[int, set[asyncio.Event]] = {}
        self._pg = PgListener(CHANNEL, self._on_payload, self._reconnected)
        self.listening = self._pg.listening

    def changed(self, mailbox_ids: Iterable[int]) -> None:
        for mailbox_id in mailbox_ids:
            for event in self._waiters.get(mailbox_id, ()):
                event.set()

    @contextlib.contextmanager
    def subscription(self, mailbox_id: int) -> Iterator[asyncio.Event]:
        """An event set by the next notice for `mailbox_id`, registered at once (so a
        change between a check and the wait is not missed)."""
        event = asyncio.Event()
        self._waiters.setdefault(mailbox_id, set()).add(event)
        try:
            yield event
        finally:
            waiters = self._waiters.get(mailbox_id)
            if waiters is not None:
                waiters.discard(event)
                if not waiters:
                    del self._waiters[mailbox_id]

    async def wait(self, mailbox_id: int, seconds: float = POLL_SECONDS) -> None:
        """Until a notice for `mailbox_id` arrives, or `seconds` pass."""
        with self.subscription(mailbox_id) as event, contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), seconds)

    @staticmethod
    async def publish_in(session: AsyncSession, mailbox_ids: Iterable[int]) -> None:
        ids = sorted(set(mailbox_ids))
        for start in range(0, len(ids), MAX_PAYLOAD_IDS):
            payload = ",".join(str(i) for i in ids[start : start + MAX_PAYLOAD_IDS])
            await session.execute(
                text("SELECT pg_notify(:channel, :payload)"),
                {"channel": CHANNEL, "payload": payload},
            )

    def start_listening(self, engine: AsyncEngine) -> None:
        """LISTEN on PostgreSQL (no-op on SQLite, a single-node database)."""
        self._pg.start(engine)

    async def stop(self) -> None:
        await self._pg.stop()

    def _on_payload(self, payload: str) -> None:
        ids = []
        for part in payload.split(","):
            with contextlib.suppress(ValueError):
                ids.append(int(part))
        self.changed(ids)

    def _reconnected(self) -> None:
        # Anything missed while (re)connecting: wake every waiter once.
        self.changed(list(self._waiters))

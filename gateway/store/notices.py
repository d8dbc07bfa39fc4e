"""PostgreSQL LISTEN on one channel, kept alive: notices from every node sharing the database.

Owns: one connection LISTENing (reconnecting after failures, checking a silent
connection with a query every `CHECK_SECONDS`) and handing each payload to a
callback. Must not: carry data (a notice only says "look again"); callers poll
too, so a notice lost while reconnecting costs delay, never correctness.

Contract: `start(engine)` is a no-op on SQLite (a single-node database);
`on_connected` runs after every (re)connection, so callers can look again for
what they may have missed; `stop()` ends the task. `listening` is set while
the LISTEN is in place.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger("barid.store")

CHECK_SECONDS = 30.0
RECONNECT_SECONDS = 2.0


class PgListener:
    def __init__(
        self,
        channel: str,
        on_notice: Callable[[str], None],
        on_connected: Callable[[], None] | None = None,
    ) -> None:
        self.channel = channel
        self._on_notice = on_notice
        self._on_connected = on_connected
        self._task: asyncio.Task[None] | None = None
        self.listening = asyncio.Event()

    @property
    def running(self) -> bool:
        return self._task is not None

    def start(self, engine: AsyncEngine) -> None:
        if engine.dialect.name != "postgresql" or self._task is not None:
            return
        self._task = asyncio.create_task(self._listen_forever(engine))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def _notice(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        self._on_notice(payload)

    async def _listen_forever(self, engine: AsyncEngine) -> None:
        while True:
            try:
                async with engine.connect() as conn:
                    raw = await conn.get_raw_connection()
                    driver = raw.driver_connection
                    assert driver is not None
                    await driver.add_listener(self.channel, self._notice)
                    self.listening.set()
                    if self._on_connected is not None:
                        self._on_connected()
                    lost = asyncio.Event()
                    driver.add_termination_listener(lambda _conn, lost=lost: lost.set())
                    while not lost.is_set():
                        # A connection that died silently shows itself on a query.
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(lost.wait(), CHECK_SECONDS)
                        if not lost.is_set():
                            await asyncio.wait_for(driver.execute("SELECT 1"), CHECK_SECONDS)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("notice listener lost its connection; reconnecting",
                            extra={"channel": self.channel})  # fmt: skip
            self.listening.clear()
            await asyncio.sleep(RECONNECT_SECONDS)

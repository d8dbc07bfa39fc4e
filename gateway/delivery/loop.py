"""The background loop shared by the delivery workers.

Owns: running a worker's `run_once()` round after round on the gateway's loop:
straight on while there is work, otherwise waiting for `wake()` or
`IDLE_POLL_SECONDS`; a store outage or an unexpected error pauses
`RETRY_SECONDS` and is logged, never ends the loop. Must not: know what a
round does.

Call order: `start()` -> `wake()` whenever work may be waiting -> `stop()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from gateway.store.mailbox.store import StoreUnavailable

IDLE_POLL_SECONDS = 1.0
RETRY_SECONDS = 5.0


class WorkerLoop:
    """Subclasses implement `run_once() -> units done` and name their logger."""

    log = logging.getLogger("barid.delivery")
    what = "delivery"

    def __init__(self) -> None:
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def run_once(self) -> int:
        raise NotImplementedError

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run_forever())

    def wake(self) -> None:
        self._wakeup.set()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run_forever(self) -> None:
        while True:
            try:
                done = await self.run_once()
            except StoreUnavailable:
                self.log.warning("mail store unavailable; %s paused", self.what)
                await asyncio.sleep(RETRY_SECONDS)
                continue
            except Exception:
                self.log.exception("%s round failed", self.what)
                await asyncio.sleep(RETRY_SECONDS)
                continue
            if done:
                continue
            self._wakeup.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), IDLE_POLL_SECONDS)

"""Parsing large mails in a second process, so the event loop keeps its core.

Owns: a one-process pool (started on first use, with the `spawn` method so the
child starts clean, without the parent's threads or sockets) that runs a pure
function of bytes, such as gateway.imap.describe.describe. Must not: hold
state across calls; the function and its argument are pickled.

Why: describing a delivered copy (pymap's MIME parse) takes about 20 ms of
CPU per 140 KiB copy while holding the GIL; done in a thread of the gateway's
process it stalls SMTP and IMAP sessions (p99 of submission went from about
0.1 s to 0.65 s at half load). Small inputs (below `in_process_below`) are
cheaper to parse here than to send to the child. If the child dies, the call
is retried in a thread and the pool is started again on the next call.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

log = logging.getLogger("barid.delivery")

IN_PROCESS_BELOW = 64 * 1024


class ParsePool:
    def __init__(
        self, function: Callable[[bytes], bytes], *, in_process_below: int = IN_PROCESS_BELOW
    ) -> None:
        self._function = function
        self._in_process_below = in_process_below
        self._pool: ProcessPoolExecutor | None = None

    async def __call__(self, data: bytes) -> bytes:
        if len(data) < self._in_process_below:
            return await asyncio.to_thread(self._function, data)
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=1, mp_context=multiprocessing.get_context("spawn")
            )
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._pool, self._function, data)
        except BrokenProcessPool:
            log.warning("parse process ended unexpectedly; parsing in a thread this time")
            self._pool = None
            return await asyncio.to_thread(self._function, data)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

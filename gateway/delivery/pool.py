"""Parsing large mails in a second process, so the event loop keeps its core.

Owns: one child process (`python -m gateway.delivery.parse_worker`, started on
first use) that applies a pure function of bytes, named as `module:function`
(e.g. "gateway.imap.describe:describe"), one request at a time over its
stdin/stdout. Must not: hold state across calls.

Why: describing a delivered copy (pymap's MIME parse) takes about 20 ms of
CPU per 140 KiB copy while holding the GIL; done in a thread of the gateway's
process it stalls SMTP and IMAP sessions. Small inputs (below
`in_process_below`) are cheaper to parse here than to send to the child. If the
child dies or misbehaves, the call is answered by a thread here and a new child
is started on the next call. A function that raises in the child raises
`ParseError` here (the same input would raise here too).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from collections.abc import Callable

from gateway.child_process import spawn_module
from gateway.delivery.parse_worker import load

log = logging.getLogger("barid.delivery")

IN_PROCESS_BELOW = 64 * 1024
_LENGTH = struct.Struct(">I")


class ParseError(Exception):
    """The function raised in the child; the text is the exception's class name."""


class ParsePool:
    def __init__(self, spec: str, *, in_process_below: int = IN_PROCESS_BELOW) -> None:
        self._spec = spec
        self._function: Callable[[bytes], bytes] = load(spec)
        self._in_process_below = in_process_below
        self._child: asyncio.subprocess.Process | None = None
        self._lock = asyncio.Lock()

    async def __call__(self, data: bytes) -> bytes:
        if len(data) < self._in_process_below:
            return await asyncio.to_thread(self._function, data)
        async with self._lock:
            try:
                return await self._ask(data)
            except (OSError, EOFError, asyncio.IncompleteReadError, ValueError):
                log.warning("parse process failed; parsing in a thread this time")
                await self._kill()
        return await asyncio.to_thread(self._function, data)

    async def _ask(self, data: bytes) -> bytes:
        child = await self._started()
        assert child.stdin is not None and child.stdout is not None
        child.stdin.write(_LENGTH.pack(len(data)) + data)
        await child.stdin.drain()
        head = await child.stdout.readexactly(1 + _LENGTH.size)
        result = await child.stdout.readexactly(_LENGTH.unpack(head[1:])[0])
        if head[0] != 0:
            raise ParseError(result.decode("ascii", "replace"))
        return result

    async def _started(self) -> asyncio.subprocess.Process:
        if self._child is None or self._child.returncode is not None:
            self._child = await spawn_module("gateway.delivery.parse_worker", self._spec)
        return self._child

    async def _kill(self) -> None:
        child, self._child = self._child, None
        if child is not None and child.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                child.kill()
            with contextlib.suppress(Exception):
                await child.wait()

    async def close(self) -> None:
        """End the child (it exits at end of input)."""
        child, self._child = self._child, None
        if child is None or child.returncode is not None:
            return
        if child.stdin is not None:
            child.stdin.close()
        try:
            await asyncio.wait_for(child.wait(), 5)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                child.kill()
            await child.wait()

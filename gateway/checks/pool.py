"""The submission checks in child processes, so that they run on a core of their own.

Owns: `CheckPool` (the parent side of gateway.checks.check_worker: N children,
started with `start()` or on first use, one message at a time each) and
`thread_checks` (the same verdicts in a worker thread of this process, as
with `[server] check_workers = 0`). Must not: store, stamp or reply — the
caller commits and answers after the verdict, exactly as on the thread path.

Why: MIME parsing, signature verification and policy hold the GIL; in a thread
they compete with the event loop, TLS, stamping and the group-commit writer.
A child holds its own copy of the values every message shares (directory
snapshot, policy, federation, limits), sent pickled once per version (a new
snapshot or policy object in the parent is a new version), so a request
carries only the message's bytes and its own small values. Each child is
started with `python -m` (a fresh interpreter: no forked event loop, database
connection or key), like gateway.delivery.pool's parse process.

Failure: a child that dies, answers garbage, or whose checks raised is
discarded, and that message is checked again in a thread here (a raising check
raises here too); the next message starts a new child. A message whose check
is cancelled (the session ended) discards its child. Nothing is acknowledged
from a child: the verdict comes back, the parent commits, then replies.
"""

from __future__ import annotations

import asyncio
import contextlib
import copyreg
import dataclasses
import fcntl
import io
import logging
import os
import pickle
from collections.abc import Callable
from types import MappingProxyType
from typing import Any

from gateway.checks.check_worker import LENGTH, MESSAGE_FIELDS, OK, SHARED_FIELDS, frame
from gateway.checks.facts import Inputs
from gateway.checks.submission import check_submission
from gateway.child_process import spawn_module
from gateway.mime.verdicts import Verdict
from gateway.model.message import PolicyAuditHit, Submission

log = logging.getLogger("barid.submission")

PIPE_BYTES = 1 << 20
CLOSE_WAIT = 1.0  # seconds a child has to end at end of input on close, then it is killed
Result = tuple[Submission | Verdict, tuple[PolicyAuditHit, ...]]


class ChildFailed(Exception):
    """The child answered with a failure status (its checks raised, or stale values)."""


def read_only(mapping: dict[Any, Any]) -> MappingProxyType[Any, Any]:
    """Rebuilds a read-only mapping in the child (the snapshot and policy use them)."""
    return MappingProxyType(mapping)


def _proxy(value: MappingProxyType[Any, Any]) -> tuple[Callable[..., object], tuple[object]]:
    return read_only, (dict(value),)


def dumps(value: object) -> bytes:
    """`pickle.dumps`, knowing read-only mappings (for this pipe only, not process-wide)."""
    buffer = io.BytesIO()
    pickler = pickle.Pickler(buffer, pickle.HIGHEST_PROTOCOL)
    pickler.dispatch_table = {**copyreg.dispatch_table, MappingProxyType: _proxy}
    pickler.dump(value)
    return buffer.getvalue()


async def thread_checks(inputs: Inputs) -> Result:
    """The checks in a worker thread of this process (`check_workers = 0`)."""
    return await asyncio.to_thread(check_submission, inputs)


def workers_for(setting: int) -> int:
    """`[server] check_workers`: -1 = one child when this process may use 2+ cores."""
    if setting >= 0:
        return setting
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return 1 if cores >= 2 else 0


class _Child:
    """One child process and the version of the shared values it holds."""

    def __init__(self) -> None:
        self.process: asyncio.subprocess.Process | None = None
        self.version = -1

    async def started(self) -> asyncio.subprocess.Process:
        if self.process is None or self.process.returncode is not None:
            self.process = await spawn_module("gateway.checks.check_worker", new_session=True)
            _widen(self.process.stdin)
            _widen(self.process.stdout)
            self.version = -1
        return self.process

    async def check(self, request: bytes, version: int, shared: bytes) -> bytes:
        process = await self.started()
        assert process.stdin is not None and process.stdout is not None
        if self.version != version:
            process.stdin.write(shared)
            self.version = version
        process.stdin.write(request)
        await process.stdin.drain()
        head = await process.stdout.readexactly(1 + LENGTH.size)
        body = await process.stdout.readexactly(LENGTH.unpack(head[1:])[0])
        if head[0] != OK:
            raise ChildFailed(body.decode("ascii", "replace"))
        return body

    def discard(self, reaping: set[asyncio.Task[None]]) -> None:
        """Kill the child now (it may be mid-answer); reap it in the background."""
        process, self.process = self.process, None
        self.version = -1
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        task = asyncio.get_running_loop().create_task(_reap(process))
        reaping.add(task)
        task.add_done_callback(reaping.discard)

    async def close(self) -> None:
        process, self.process = self.process, None
        if process is None or process.returncode is not None:
            return
        if process.stdin is not None:
            process.stdin.close()
        try:  # it holds nothing to save: a child still importing is not waited for long
            await asyncio.wait_for(process.wait(), CLOSE_WAIT)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()


def _widen(stream: asyncio.StreamWriter | asyncio.StreamReader | None) -> None:
    """A pipe that holds a whole message (Linux: 1 MiB, not 64 KiB), so a request or
    an answer is written in one go instead of waking both sides for every 64 KiB."""
    transport = getattr(stream, "transport", None) or getattr(stream, "_transport", None)
    pipe = transport.get_extra_info("pipe") if transport is not None else None
    if pipe is not None and hasattr(fcntl, "F_SETPIPE_SZ"):
        with contextlib.suppress(OSError):
            fcntl.fcntl(pipe.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)


async def _reap(process: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(Exception):
        await process.wait()


class CheckPool:
    """`await pool(inputs)`: the same `(verdict, hits)` as `check_submission(inputs)`."""

    def __init__(self, workers: int) -> None:
        if workers < 1:
            raise ValueError("a check pool needs at least one child")
        self._children = [_Child() for _ in range(workers)]
        self._idle: asyncio.Queue[_Child] = asyncio.Queue()
        for child in self._children:
            self._idle.put_nowait(child)
        self._shared_of: tuple[object, ...] = ()
        self._shared = b""
        self._version = 0
        self._refresh = asyncio.Lock()
        self._reaping: set[asyncio.Task[None]] = set()
        self._closed = False
        self.answered = 0  # messages a child checked
        self.in_thread = 0  # messages checked in a thread instead (a child failed)

    async def start(self) -> None:
        """Start every child now (its imports then overlap the gateway's start)."""
        for child in self._children:
            await child.started()

    async def __call__(self, inputs: Inputs) -> Result:
        if self._closed:
            return await thread_checks(inputs)
        try:
            version, shared = await self._shared_values(inputs)
            fields = {name: getattr(inputs, name) for name in MESSAGE_FIELDS}
            request = frame(dumps(("check", version, fields)))
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            log.warning("check inputs not sendable (%s); checking in a thread", type(exc).__name__)
            return await self._in_thread(inputs)
        child = await self._idle.get()
        body = None
        try:
            body = await child.check(request, version, shared)
        except (OSError, EOFError, ValueError, asyncio.IncompleteReadError, ChildFailed) as exc:
            log.warning("check process failed (%s); checking in a thread", type(exc).__name__)
        finally:
            if body is None:  # failed or cancelled: its pipe state is unknown
                child.discard(self._reaping)
            self._idle.put_nowait(child)
        if body is None:
            return await self._in_thread(inputs)
        try:
            verdict, hits = pickle.loads(body)  # noqa: S301 - our child, over our pipe
        except Exception:
            log.warning("check process answered garbage; checking in a thread")
            return await self._in_thread(inputs)
        self.answered += 1
        if isinstance(verdict, Submission):
            verdict = dataclasses.replace(verdict, raw=inputs.raw)
        return verdict, hits

    async def _in_thread(self, inputs: Inputs) -> Result:
        self.in_thread += 1
        return await thread_checks(inputs)

    async def _shared_values(self, inputs: Inputs) -> tuple[int, bytes]:
        """The version of the shared values and their frame (pickled once per version)."""
        values = tuple(getattr(inputs, name) for name in SHARED_FIELDS)
        if _same(values, self._shared_of):
            return self._version, self._shared
        async with self._refresh:
            if not _same(values, self._shared_of):
                version = self._version + 1
                payload = await asyncio.to_thread(
                    dumps, ("shared", version, dict(zip(SHARED_FIELDS, values, strict=True)))
                )
                self._shared_of, self._shared, self._version = values, frame(payload), version
        return self._version, self._shared

    async def close(self) -> None:
        """End the children (they exit at end of input); later checks run in a thread."""
        self._closed = True
        await asyncio.gather(*(child.close() for child in self._children))
        await asyncio.gather(*self._reaping, return_exceptions=True)


def _same(values: tuple[object, ...], known: tuple[object, ...]) -> bool:
    """The same objects (identity, not equality: a new snapshot or policy is a new version)."""
    return len(values) == len(known) and all(a is b for a, b in zip(values, known, strict=True))

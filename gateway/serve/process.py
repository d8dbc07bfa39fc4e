"""`barid serve` as a process: the pid file, signals and the garbage collector.

Owns: `run` (start the gateway, wait for SIGTERM or SIGINT, stop it cleanly;
SIGHUP reloads the policy), claiming and releasing `<data_dir>/barid.pid`, and
tuning the collector for a long-running server. Must not: start listeners or
workers itself (gateway.serve.gateway does).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
from pathlib import Path

from gateway.config import Settings
from gateway.serve.admin_hook import AdminAppFactory
from gateway.serve.gateway import Gateway
from gateway.serve.sockets import StartupError

log = logging.getLogger("barid.serve")
GC_YOUNG_THRESHOLD = 50_000
PID_FILE = "barid.pid"


def claim_pid_file(path: Path) -> None:
    """Write our pid; refuse when another live gateway holds the file."""
    try:
        other = int(path.read_text().strip())
    except (OSError, ValueError):
        other = 0
    if other and other != os.getpid():
        try:
            os.kill(other, 0)
        except ProcessLookupError:
            pass  # stale
        except PermissionError:
            raise StartupError(
                f"another gateway runs with this data directory (pid {other})"
            ) from None
        else:
            raise StartupError(f"another gateway runs with this data directory (pid {other})")
    tmp = path.with_suffix(".tmp")
    tmp.write_text(f"{os.getpid()}\n")
    tmp.replace(path)


def release_pid_file(path: Path) -> None:
    with contextlib.suppress(OSError, ValueError):
        if int(path.read_text().strip()) == os.getpid():
            path.unlink()


def tune_garbage_collector() -> None:
    """A long-running server: the objects made at start-up (modules, the directory
    snapshot, the policy) are frozen out of collection, and the young generation is
    collected less often. Answering a FETCH of a thousand headers allocates many
    short-lived objects; CPython's default threshold (700) made collection a sixth
    of that work. Reference counting still frees almost everything at once."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, 20, 20)


async def run(settings: Settings, admin_app: AdminAppFactory | None = None) -> None:
    """Start everything, wait for SIGTERM or SIGINT, stop cleanly. SIGHUP reloads the policy.
    `admin_app` builds the admin listener's app (`barid serve` passes admin's)."""
    pid_file = settings.data_dir / PID_FILE
    # Once the pid file names this process, `barid policy reload` may send SIGHUP;
    # until its handler is in place the signal waits (blocked) instead of killing
    # a gateway that is still starting.
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGHUP})
    try:
        claim_pid_file(pid_file)
    except BaseException:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        raise
    gateway = Gateway(settings, admin_app)
    try:
        try:
            await gateway.start()
        except BaseException:
            await gateway.stop()
            raise
        tune_garbage_collector()
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        reloads: set[asyncio.Task[object]] = set()

        def on_hup() -> None:
            if gateway.policy is None:
                return
            task = asyncio.create_task(gateway.policy.reload("sighup"))
            reloads.add(task)
            task.add_done_callback(reloads.discard)

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        loop.add_signal_handler(signal.SIGHUP, on_hup)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGHUP})
        try:
            await stop.wait()
            log.info("shutting down")
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)
            await asyncio.gather(*reloads, return_exceptions=True)
            await gateway.stop()
    finally:
        release_pid_file(pid_file)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    log.info("stopped")

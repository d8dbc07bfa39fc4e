"""`barid serve`: every listener and worker on one asyncio loop, started and stopped together.

Owns: the public face of serving (import from here). Must not: parse mail or
decide policy. Parts: gateway (the `Gateway` and its start order, at one level),
listeners (one start function per listener), workers (mail and relay workers),
services (database checks, policy, TLS, the pipeline), sockets (`bind`,
`StartupError`), process (`run`: pid file, signals).
"""

from __future__ import annotations

from gateway.serve.gateway import SNAPSHOT_POLL_SECONDS, Gateway
from gateway.serve.listeners import QuietUvicorn
from gateway.serve.process import (
    PID_FILE,
    claim_pid_file,
    release_pid_file,
    run,
    tune_garbage_collector,
)
from gateway.serve.sockets import StartupError, bind

__all__ = [
    "PID_FILE",
    "SNAPSHOT_POLL_SECONDS",
    "Gateway",
    "QuietUvicorn",
    "StartupError",
    "bind",
    "claim_pid_file",
    "release_pid_file",
    "run",
    "tune_garbage_collector",
]

"""The audit event of a leak trace: every trace, answered or refused, leaves one.

Owns: `audited` (runs a trace and writes its one `leak.trace` event afterwards,
in a transaction of its own) and `record_refused_input` (the event of an input
that could not even be read). The event says who traced (actor, role, client,
channel), what kind of input it was and its SHA-256, the outcome (`ok`,
`no-match`, `refused`) and, when a copy was found, which (registry number,
trace code, recipient). Must not: record the input's content (not the typed
code, not a file's name or bytes, not the refusal's text, which may quote the
input). Failure: when the event cannot be written the trace's answer is not
given: `Unavailable` ("the database is not reachable").
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, TypeVar

from admin.context import App
from admin.services.actor import Actor, Forbidden, OutOfScope
from admin.services.errors import InvalidInput, NotFound, Unavailable
from admin.services.scope import acting
from gateway.store import audit
from gateway.store.db import transaction
from gateway.store.errors import DATABASE_ERRORS

TRACE_ACTION = "leak.trace"


class _Copy(Protocol):
    @property
    def registry(self) -> str: ...
    @property
    def trace_code(self) -> str: ...
    @property
    def recipient(self) -> str: ...


class _Trace(Protocol):
    @property
    def copies(self) -> Sequence[_Copy]: ...
    @property
    def recipient_named(self) -> bool: ...


T = TypeVar("T", bound=_Trace)


async def _record(
    actor: Actor, app: App, kind: str, sha256: str | None, outcome: str, trace: _Trace | None
) -> None:
    copies = [
        {"registry": c.registry, "trace_code": c.trace_code, "recipient": c.recipient}
        for c in (trace.copies if trace else [])
    ]
    details: dict[str, Any] = {"kind": kind, "sha256": sha256, "copies": copies}
    if trace is not None:
        details["recipient_named"] = trace.recipient_named
    target = " ".join(sorted({c["registry"] for c in copies}))
    try:
        with acting(actor):
            async with transaction(app.sessions) as session:
                await audit.append(
                    session, app.audit_key, actor=actor.audit_name, action=TRACE_ACTION,
                    target=target, outcome=outcome, details=details,
                )  # fmt: skip
    except DATABASE_ERRORS:
        raise Unavailable("the database is not reachable") from None


async def audited(
    actor: Actor, app: App, kind: str, sha256: str, run: Callable[[], Awaitable[T]]
) -> T:
    """`run()`'s answer, after its `leak.trace` event is written; a refusal is
    recorded too, then raised unchanged (a database fault is not recorded)."""
    try:
        trace = await run()
    except (NotFound, InvalidInput):
        await _record(actor, app, kind, sha256, "no-match", None)
        raise
    except (Forbidden, OutOfScope):
        await _record(actor, app, kind, sha256, "refused", None)
        raise
    await _record(actor, app, kind, sha256, "ok", trace)
    return trace


async def record_refused_input(actor: Actor, app: App) -> None:
    """The event of an input that could not be read (no such file, unreadable)."""
    await _record(actor, app, "file", None, "refused", None)


__all__ = ["TRACE_ACTION", "audited", "record_refused_input"]

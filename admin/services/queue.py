"""Delivery queue use cases: list, show, retry, hold, release, purge.

Owns: one function per use case, each taking the `Actor` first. A queue entry
belongs to the agency that issued its message: a scoped actor lists and changes
only entries of its subtree. Must not: change entries itself
(gateway.store.queue does, guarded and audited).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager

from admin.context import App
from admin.services.actor import Actor, Area
from admin.services.errors import Conflict, InvalidInput, NotFound, Unavailable
from admin.services.model import Frozen
from admin.services.scope import acting, actor_subtree, check, home_path, tree
from gateway.model.target import DeliveryTarget
from gateway.store.directory.scope import queue_entry_agency
from gateway.store.errors import DATABASE_ERRORS
from gateway.store.queue import (
    MAX_LIMIT,
    QueueAdmin,
    QueueEntry,
    QueueError,
    QueueStateError,
    UnknownEntry,
)
from gateway.store.revocation import check_revoke_reason

__all__ = ["QueueEntry", "QueueQuery", "hold", "list_entries", "purge", "release", "retry", "show"]


class QueueQuery(Frozen):
    state: str | None = None
    target: str | None = None  # "local", "peer:<name>" or "imap:<name>"
    limit: int = 100
    after: int | None = None  # only entries with a higher id (the paging position)


@contextmanager
def _errors() -> Iterator[None]:
    """The queue's refusals as service errors, with the same messages."""
    try:
        yield
    except UnknownEntry as exc:
        raise NotFound(str(exc)) from None
    except QueueStateError as exc:
        raise Conflict(str(exc)) from None
    except QueueError as exc:
        raise Conflict(str(exc)) from None
    except ValueError as exc:
        raise InvalidInput(str(exc), problems=[str(exc)]) from None
    except DATABASE_ERRORS:
        raise Unavailable("the database is not reachable") from None


async def list_entries(actor: Actor, app: App, query: QueueQuery) -> list[QueueEntry]:
    """Entries oldest first; a scoped actor sees only its subtree's messages."""
    with _errors():
        agencies = await tree(app)
    check(actor, Area.QUEUE, write=False, path=home_path(actor, agencies))
    if not 1 <= query.limit <= MAX_LIMIT:
        message = f"limit must be between 1 and {MAX_LIMIT}"
        raise InvalidInput(message, problems=[message])
    try:
        target = DeliveryTarget.parse(query.target) if query.target else None
    except ValueError as exc:
        raise InvalidInput(str(exc), problems=[str(exc)]) from None
    admin = QueueAdmin(app.sessions, app.audit_key)
    subtree = actor_subtree(actor, agencies)
    with _errors():
        return await admin.list(
            state=query.state, target=target, limit=query.limit, agencies=subtree,
            after=query.after,
        )  # fmt: skip


async def _checked(actor: Actor, app: App, entry_id: int, *, write: bool) -> QueueAdmin:
    with _errors():
        async with app.sessions() as session:
            code = await queue_entry_agency(session, entry_id)
        path = (await tree(app)).path(code)
    missing = NotFound(str(UnknownEntry(entry_id)))
    check(actor, Area.QUEUE, write=write, path=path, missing=missing)
    return QueueAdmin(app.sessions, app.audit_key)


async def show(actor: Actor, app: App, entry_id: int) -> QueueEntry:
    """One entry with its registry number, recipient and trace code."""
    admin = await _checked(actor, app, entry_id, write=False)
    with _errors():
        return await admin.show(entry_id)


async def _change(
    actor: Actor,
    app: App,
    entry_id: int,
    action: Callable[[QueueAdmin], Awaitable[QueueEntry]],
    *,
    already: str | None = None,
) -> QueueEntry:
    """Run `action`; an entry in state `already` (when given) is returned unchanged."""
    admin = await _checked(actor, app, entry_id, write=True)
    with _errors():
        try:
            with acting(actor):
                return await action(admin)
        except QueueStateError as exc:
            if already is None or exc.state != already:
                raise
        return await admin.show(entry_id)


async def retry(actor: Actor, app: App, entry_id: int) -> QueueEntry:
    """A queued or held entry becomes queued and due now."""
    return await _change(actor, app, entry_id, lambda a: a.retry(entry_id, actor=actor.audit_name))


async def hold(actor: Actor, app: App, entry_id: int, *, unchanged_ok: bool = False) -> QueueEntry:
    """A queued entry is set aside until released (`unchanged_ok`: a held one is
    returned as it is, nothing written, instead of a `Conflict`)."""
    return await _change(
        actor, app, entry_id, lambda a: a.hold(entry_id, actor=actor.audit_name),
        already="held" if unchanged_ok else None,
    )  # fmt: skip


async def release(
    actor: Actor, app: App, entry_id: int, *, unchanged_ok: bool = False
) -> QueueEntry:
    """A held entry becomes queued and due now (`unchanged_ok`: a queued one is
    returned as it is, nothing written, instead of a `Conflict`)."""
    return await _change(
        actor, app, entry_id, lambda a: a.release(entry_id, actor=actor.audit_name),
        already="queued" if unchanged_ok else None,
    )  # fmt: skip


async def purge(actor: Actor, app: App, entry_id: int, reason: str) -> QueueEntry:
    """A queued or held entry fails; the sender gets a non-delivery receipt."""
    try:
        text = check_revoke_reason(reason)
    except ValueError as exc:
        message = f"reason: {exc}"
        raise InvalidInput(message, problems=[message]) from None
    return await _change(
        actor, app, entry_id, lambda a: a.purge(entry_id, text, actor=actor.audit_name)
    )

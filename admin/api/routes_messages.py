"""Routes of official messages and the delivery queue: tracking, revocation,
queue listing and the operator's queue actions.

Owns: the HTTP shape of admin.services.messages and .queue (paths, bodies,
paging, the idempotent answers). Must not: read or change messages or entries
itself; the services check role and scope (outside a scoped role's subtree is
404) and audit every change. Never returns a message body.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, Field

from admin.api.auth import current_actor
from admin.api.deps import context
from admin.api.paging import DEFAULT_LIMIT, MAX_LIMIT, Page, page_of
from admin.context import App
from admin.services import messages, queue
from admin.services.actor import Actor
from gateway.store.queue import STATES

router = APIRouter()
ACTOR = Depends(current_actor)
CONTEXT = Depends(context)
REGISTRY = Path(
    pattern=r"^[A-Za-z0-9][A-Za-z0-9-]{0,31}/[0-9]{4}/[0-9]{1,12}$",
    description="registry number, e.g. MOH/2026/000042",
)
ENTRY_ID = Path(ge=1, le=2**62)
QUEUE = "queue"


class RevocationRequest(BaseModel):
    reason: str = Field(max_length=500, description="one line; shown to verifiers")


class PurgeRequest(BaseModel):
    reason: str = Field(max_length=500, description="one line; recorded in the audit trail")


class QueueEntryOut(BaseModel):
    id: int
    state: str
    target: str = Field(description='"local", "peer:<name>" or "imap:<name>"')
    registry: str
    recipient: str
    trace_code: str
    attempts: int
    next_attempt_at: str
    last_error: str | None
    created_at: str
    updated_at: str
    delivered_at: str | None


def _entry(entry: queue.QueueEntry) -> QueueEntryOut:
    return QueueEntryOut.model_validate(entry.as_dict())


@router.get("/messages/{registry:path}", response_model=messages.MessageTracking, tags=["messages"])
async def track(
    registry: str = REGISTRY, actor: Actor = ACTOR, app: App = CONTEXT
) -> messages.MessageTracking:
    """Tracking of an official message: every copy's target, state, attempts,
    delivery time and receipts. Never the content."""
    return await messages.show_message(actor, app, registry)


@router.post(
    "/messages/{registry:path}/revocation",
    response_model=messages.RevocationResult,
    tags=["messages"],
)
async def revoke(
    body: RevocationRequest, registry: str = REGISTRY, actor: Actor = ACTOR, app: App = CONTEXT
) -> messages.RevocationResult:
    """Revoke an issued message; verification then reports it revoked with the reason.

    Idempotent: a message revoked already answers 200 with the existing
    revocation (its first reason and time), and nothing changes.
    """
    data = messages.Revocation(registry=registry, reason=body.reason)
    return await messages.revoke_message(actor, app, data, existing_ok=True)


@router.get("/queue", response_model=Page[QueueEntryOut], tags=["queue"])
async def list_queue(
    request: Request,
    state: str | None = Query(None, pattern="^(" + "|".join(STATES) + ")$"),
    target: str | None = Query(None, max_length=200, description='"local", "peer:<name>"...'),
    limit: int = Query(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT),
    cursor: str | None = Query(None, max_length=200),
    actor: Actor = ACTOR, app: App = CONTEXT,
) -> Page[QueueEntryOut]:  # fmt: skip
    """Delivery queue entries, oldest first (a scoped role: its subtree's messages only)."""
    cursors = request.app.state.cursors
    after = cursors.decode(QUEUE, cursor)
    query = queue.QueueQuery(
        state=state, target=target, limit=limit + 1,
        after=int(after) if after is not None else None,
    )  # fmt: skip
    found = [_entry(entry) for entry in await queue.list_entries(actor, app, query)]
    return page_of(found, lambda entry: entry.id, limit, QUEUE, cursors)


@router.get("/queue/{entry_id}", response_model=QueueEntryOut, tags=["queue"])
async def show_entry(
    entry_id: int = ENTRY_ID, actor: Actor = ACTOR, app: App = CONTEXT
) -> QueueEntryOut:
    """One queue entry: registry number, recipient, trace code, state, attempts."""
    return _entry(await queue.show(actor, app, entry_id))


@router.post("/queue/{entry_id}/retry", response_model=QueueEntryOut, tags=["queue"])
async def retry_entry(
    entry_id: int = ENTRY_ID, actor: Actor = ACTOR, app: App = CONTEXT
) -> QueueEntryOut:
    """A queued or held entry becomes queued and due now (a retry is harmless)."""
    return _entry(await queue.retry(actor, app, entry_id))


@router.post("/queue/{entry_id}/hold", response_model=QueueEntryOut, tags=["queue"])
async def hold_entry(
    entry_id: int = ENTRY_ID, actor: Actor = ACTOR, app: App = CONTEXT
) -> QueueEntryOut:
    """A queued entry is set aside until released. Idempotent: a held entry
    answers 200 as it is, and nothing changes."""
    return _entry(await queue.hold(actor, app, entry_id, unchanged_ok=True))


@router.post("/queue/{entry_id}/release", response_model=QueueEntryOut, tags=["queue"])
async def release_entry(
    entry_id: int = ENTRY_ID, actor: Actor = ACTOR, app: App = CONTEXT
) -> QueueEntryOut:
    """A held entry becomes queued and due now. Idempotent: a queued entry
    answers 200 as it is, and nothing changes."""
    return _entry(await queue.release(actor, app, entry_id, unchanged_ok=True))


@router.post("/queue/{entry_id}/purge", response_model=QueueEntryOut, tags=["queue"])
async def purge_entry(
    body: PurgeRequest, entry_id: int = ENTRY_ID, actor: Actor = ACTOR, app: App = CONTEXT
) -> QueueEntryOut:
    """A queued or held entry fails with the reason; the sender gets a
    non-delivery receipt. A failed or delivered entry is a 409 conflict."""
    return _entry(await queue.purge(actor, app, entry_id, body.reason))

"""Routes of the audit trail: events, chain verification, and the access trail
(who fetched which official message) as JSON pages or a CSV export.

Owns: the HTTP shape of admin.services.audit (filters, paging newest first by
event id, the streamed CSV). Must not: read the audit tables itself; the
service scopes an agency administrator to its subtree. Failure behaviour: a
refusal is a problem before the CSV starts; a failure while streaming it
ends the stream early (logged; the client sees a truncated file).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from admin.api.auth import current_actor
from admin.api.csv_export import csv_lines
from admin.api.deps import context
from admin.api.paging import DEFAULT_LIMIT, MAX_LIMIT, Page, page_of
from admin.context import App
from admin.services import audit
from admin.services.actor import Actor
from admin.services.errors import SERVICE_ERRORS

log = logging.getLogger("barid.admin.api")

router = APIRouter(tags=["audit"])
ACTOR = Depends(current_actor)
CONTEXT = Depends(context)
LIMIT = Query(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)
CURSOR = Query(None, max_length=200)
TIME = "ISO 8601 date or date-time (UTC unless an offset is given), or a span back: 24h, 7d"
EVENTS = "audit-events"
ACCESSES = "access-trail"
CSV_BATCH = 1000
CSV_COLUMNS = ("at", "employee", "registry", "trace", "copy", "protocol", "client", "mailbox",
               "uid", "items", "event_id", "node")  # fmt: skip


class AccessEntryOut(BaseModel):
    at: str
    employee: str
    registry: str
    trace: str | None
    copy_kind: str = Field(alias="copy", description="which copy was fetched")
    protocol: str
    client: str
    mailbox: str
    uid: int | None
    items: list[str]
    event_id: int
    node: str | None = None  # the gateway node that served the fetch


class AccessFilters(BaseModel):
    employee: str | None = None
    registry: str | None = None
    since: str | None = None
    until: str | None = None


def _filters(
    employee: str | None = Query(None, max_length=320),
    registry: str | None = Query(None, max_length=64),
    since: str | None = Query(None, max_length=64, description=TIME),
    until: str | None = Query(None, max_length=64, description=TIME + "; exclusive"),
) -> AccessFilters:
    return AccessFilters(employee=employee, registry=registry, since=since, until=until)


FILTERS = Depends(_filters)


def _position(request: Request, listing: str, cursor: str | None) -> int | None:
    after = request.app.state.cursors.decode(listing, cursor)
    return int(after) if after is not None else None


@router.get("/audit/events", response_model=Page[audit.AuditEventView])
async def audit_events(
    request: Request,
    kind: str | None = Query(None, max_length=64, description="the action, e.g. policy.apply"),
    actor_name: str | None = Query(None, alias="actor", max_length=320),
    since: str | None = Query(None, max_length=64, description=TIME),
    until: str | None = Query(None, max_length=64, description=TIME + "; exclusive"),
    limit: int = LIMIT, cursor: str | None = CURSOR,
    actor: Actor = ACTOR, app: App = CONTEXT,
) -> Page[audit.AuditEventView]:  # fmt: skip
    """Audit events, newest first (an agency administrator: events about its subtree)."""
    query = audit.AuditQuery(
        action=kind, actor=actor_name, since=since, until=until, limit=limit + 1,
        before=_position(request, EVENTS, cursor), newest_first=True,
    )  # fmt: skip
    found = await audit.query_events(actor, app, query)
    return page_of(found, lambda event: event.id, limit, EVENTS, request.app.state.cursors)


@router.get("/audit/verify", response_model=audit.ChainReport)
async def verify(actor: Actor = ACTOR, app: App = CONTEXT) -> audit.ChainReport:
    """Walk the whole audit chain: every changed, missing or reordered event is reported."""
    return await audit.verify_chain(actor, app)


def _query(filters: AccessFilters, limit: int, before: int | None) -> audit.AccessQuery:
    return audit.AccessQuery(**filters.model_dump(), limit=limit, before=before, newest_first=True)


def _out(entry: audit.AccessEntry) -> AccessEntryOut:
    return AccessEntryOut.model_validate(entry.as_dict())


@router.get("/access-trail", response_model=Page[AccessEntryOut])
async def access_trail(
    request: Request, filters: AccessFilters = FILTERS, limit: int = LIMIT,
    cursor: str | None = CURSOR, actor: Actor = ACTOR, app: App = CONTEXT,
) -> Page[AccessEntryOut]:  # fmt: skip
    """Who fetched which official message, newest first (an agency administrator:
    its subtree's messages and its employees' fetches)."""
    query = _query(filters, limit + 1, _position(request, ACCESSES, cursor))
    found = [_out(entry) for entry in await audit.access_trail(actor, app, query)]
    return page_of(found, lambda entry: entry.event_id, limit, ACCESSES, request.app.state.cursors)


def _row(entry: audit.AccessEntry) -> list[object]:
    facts = entry.as_dict()
    facts["items"] = " ".join(entry.items)
    return [facts[column] for column in CSV_COLUMNS]


@router.get(
    "/access-trail.csv",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}},
)
async def access_trail_csv(
    filters: AccessFilters = FILTERS, actor: Actor = ACTOR, app: App = CONTEXT
) -> StreamingResponse:
    """The access trail with the same filters as CSV (RFC 4180, a header row, newest
    first), streamed. Cells starting with = + - @ are prefixed with ' so that a
    spreadsheet never evaluates them."""
    return await access_csv(actor, app, filters)


async def access_csv(actor: Actor, app: App, filters: AccessFilters) -> StreamingResponse:
    """The access trail's CSV as a streamed response (the API's route and the web
    admin's export link both answer with it); a refusal is raised before it starts."""
    first = await audit.access_trail(actor, app, _query(filters, CSV_BATCH, None))

    async def rows() -> AsyncIterator[str]:
        yield csv_lines([CSV_COLUMNS])
        batch = first
        while batch:
            yield csv_lines(_row(entry) for entry in batch)
            if len(batch) < CSV_BATCH:
                return
            try:
                query = _query(filters, CSV_BATCH, batch[-1].event_id)
                batch = await audit.access_trail(actor, app, query)
            except SERVICE_ERRORS as exc:
                log.warning("access-trail export ended early: %s", type(exc).__name__)
                return

    headers = {"content-disposition": 'attachment; filename="access-trail.csv"'}
    return StreamingResponse(rows(), media_type="text/csv; charset=utf-8", headers=headers)

"""Routes of alerts: list them, acknowledge one.

Owns: the HTTP shape of admin.services.alerts (filters, paging newest first by
alert id, the acknowledgement body). Must not: read or write the audit trail
itself; the service checks the role (alerts belong to no agency: an agency
administrator or a registrar gets 403) and audits the acknowledgement.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, Field

from admin.api.auth import current_actor
from admin.api.deps import context
from admin.api.paging import DEFAULT_LIMIT, MAX_LIMIT, Page, page_of
from admin.context import App
from admin.services import alerts
from admin.services.actor import Actor

router = APIRouter(tags=["alerts"])
ACTOR = Depends(current_actor)
CONTEXT = Depends(context)
ALERT_ID = Path(ge=1, le=alerts.MAX_ID, description="the alert's audit event id")
TIME = "ISO 8601 date or date-time (UTC unless an offset is given), or a span back: 24h, 7d"
ALERTS = "alerts"
KIND = Query(None, description="only this kind of alert")


class AcknowledgementRequest(BaseModel):
    note: str = Field("", max_length=alerts.MAX_NOTE, description="one line; recorded")


@router.get("/alerts", response_model=Page[alerts.AlertView])
async def list_alerts(
    request: Request,
    kind: alerts.AlertKind | None = KIND,
    since: str | None = Query(None, max_length=64, description=TIME),
    until: str | None = Query(None, max_length=64, description=TIME + "; exclusive"),
    acknowledged: bool | None = Query(None, description="false: only the open alerts"),
    limit: int = Query(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT),
    cursor: str | None = Query(None, max_length=200),
    actor: Actor = ACTOR, app: App = CONTEXT,
) -> Page[alerts.AlertView]:  # fmt: skip
    """Alerts the gateway raised (verification spikes, a peer's TLS trouble, login
    lockouts), newest first, each with its acknowledgement if it has one."""
    cursors = request.app.state.cursors
    after = cursors.decode(ALERTS, cursor)
    query = alerts.AlertQuery(
        kind=kind, since=since, until=until, acknowledged=acknowledged, limit=limit + 1,
        before=int(after) if after is not None else None,
    )  # fmt: skip
    found = await alerts.list_alerts(actor, app, query)
    return page_of(found, lambda alert: alert.id, limit, ALERTS, cursors)


@router.post("/alerts/{alert_id}/acknowledgement", response_model=alerts.Acknowledgement)
async def acknowledge(
    body: AcknowledgementRequest | None = None,
    alert_id: int = ALERT_ID,
    actor: Actor = ACTOR,
    app: App = CONTEXT,
) -> alerts.Acknowledgement:
    """Acknowledge an alert, with an optional note; audited. A security auditor may
    do this (the one change the role makes).

    Idempotent: an alert acknowledged already answers 200 with its existing
    acknowledgement (the first account, time and note), and nothing changes.
    """
    note = body.note if body is not None else ""
    return await alerts.acknowledge(actor, app, alert_id, note)

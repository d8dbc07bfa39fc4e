"""The web admin's security pages, under /admin/security/: the audit trail with its
filters, paging and chain status; the access trail with its filters, paging and
CSV export; the alerts, open and acknowledged, with the acknowledgement form.

Owns: the HTTP shape of these pages (query filters in, HTML out, the cursor of the
next page, the acknowledgement form's post and its redirect). Must not: read the
audit tables or decide who sees what: admin.services.audit and admin.services.alerts
scope an agency administrator to its subtree and refuse roles; the CSV is the
API's own (admin.api.routes_audit.access_csv).

Failure behaviour: a filter too long, a bad time or a cursor that was edited ->
the "input not accepted" page (422) and nothing shown; a role that may not read
an area -> 403; an alert that does not exist -> 404; a post without the right
CSRF token -> 403 and nothing done. No service's internal text reaches the page.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar
from urllib.parse import urlencode

from fastapi import APIRouter, Request, Response

from admin.api.problems import ApiProblem
from admin.api.routes_audit import ACCESSES, EVENTS, AccessFilters, access_csv
from admin.services import alerts, audit
from admin.services.actor import Area, may
from admin.services.errors import SERVICE_ERRORS, InvalidInput
from admin.web.pages import PREFIX, Frame, page, posted, refusal, signed_in, to

router = APIRouter(include_in_schema=False)
HOME = f"{PREFIX}/security"
PAGE_SIZE = 50
ALERTS = "alerts"
STATES = {"open": False, "acknowledged": True, "all": None}
T = TypeVar("T")

# Query filters of each page: name -> longest accepted value.
AUDIT_FILTERS = {"kind": 64, "actor": 320, "since": 64, "until": 64}
ACCESS_FILTERS = {"employee": 320, "registry": 64, "since": 64, "until": 64}


def _filters(request: Request, names: dict[str, int]) -> dict[str, str]:
    """The page's filters as given (blank ones left out); InvalidInput when too long."""
    found: dict[str, str] = {}
    for name, longest in names.items():
        value = request.query_params.get(name, "").strip()
        if len(value) > longest:
            raise InvalidInput(f"{name}: at most {longest} characters")
        if value:
            found[name] = value
    return found


def _position(request: Request, listing: str) -> int | None:
    """The id the page starts below (the signed cursor of the previous page's link)."""
    cursor = request.query_params.get("cursor") or None
    try:
        after = request.app.state.cursors.decode(listing, cursor)
    except ApiProblem:
        raise InvalidInput("the page link is not valid") from None
    return after if isinstance(after, int) else None


def _paged(
    request: Request, items: Sequence[T], key: Callable[[T], int], listing: str,
    shown: dict[str, str],
) -> tuple[Sequence[T], str | None]:  # fmt: skip
    """The first PAGE_SIZE of `items` (fetched one more) and the next page's link."""
    if len(items) <= PAGE_SIZE:
        return items, None
    kept = items[:PAGE_SIZE]
    cursor = request.app.state.cursors.encode(listing, key(kept[-1]))
    return kept, f"{request.url.path}?{urlencode(shown | {'cursor': cursor})}"


def sections(frame: Frame) -> list[tuple[str, str]]:
    """The security pages this caller may read: (path, catalogue key)."""
    home = [frame.actor.agency] if frame.actor.agency else None
    wanted = [(Area.AUDIT, "audit", "sec.audit"), (Area.ACCESS_TRAIL, "access", "sec.access"),
              (Area.ALERTS, "alerts", "sec.alerts")]  # fmt: skip
    found = [
        (f"{HOME}/{path}", key)
        for area, path, key in wanted
        if may(frame.actor, area, write=False, agency_path=home)
    ]
    if frame.actor.agency is None and may(frame.actor, Area.ALERTS, write=False, agency_path=None):
        found.append((f"{HOME}/radar", "sec.radar"))  # gateway-wide: unscoped roles only
    return found


@router.get(HOME)
@router.get(f"{HOME}/")
async def security_home() -> Response:
    return to(f"{HOME}/audit")


@router.get(f"{HOME}/audit")
async def audit_page(request: Request) -> Response:
    frame = await signed_in(request)
    if isinstance(frame, Response):
        return frame
    try:
        shown = _filters(request, AUDIT_FILTERS)
        query = audit.AuditQuery(
            action=shown.get("kind"), actor=shown.get("actor"), since=shown.get("since"),
            until=shown.get("until"), limit=PAGE_SIZE + 1,
            before=_position(request, EVENTS), newest_first=True,
        )  # fmt: skip
        found = await audit.query_events(frame.actor, frame.app, query)
        chain = None
        if may(frame.actor, Area.AUDIT, write=False, agency_path=None) and "cursor" not in (
            request.query_params
        ):
            chain = await audit.verify_chain(frame.actor, frame.app)
    except SERVICE_ERRORS as exc:
        return refusal(request, frame, exc, back=f"{HOME}/audit")
    events, more = _paged(request, found, lambda event: event.id, EVENTS, shown)
    return page(request, "security_audit.html", frame=frame, sections=sections(frame),
                shown=shown, events=events, more=more, chain=chain,
                cursor="cursor" in request.query_params)  # fmt: skip


def _access_filters(shown: dict[str, str]) -> AccessFilters:
    return AccessFilters(**shown)


@router.get(f"{HOME}/access")
async def access_page(request: Request) -> Response:
    frame = await signed_in(request)
    if isinstance(frame, Response):
        return frame
    try:
        shown = _filters(request, ACCESS_FILTERS)
        query = audit.AccessQuery(
            **shown, limit=PAGE_SIZE + 1, before=_position(request, ACCESSES), newest_first=True
        )
        found = await audit.access_trail(frame.actor, frame.app, query)
    except SERVICE_ERRORS as exc:
        return refusal(request, frame, exc, back=f"{HOME}/access")
    entries, more = _paged(request, found, lambda entry: entry.event_id, ACCESSES, shown)
    export = f"{HOME}/access.csv" + (f"?{urlencode(shown)}" if shown else "")
    return page(request, "security_access.html", frame=frame, sections=sections(frame),
                shown=shown, entries=entries, more=more, export=export,
                cursor="cursor" in request.query_params)  # fmt: skip


@router.get(f"{HOME}/access.csv")
async def access_export(request: Request) -> Response:
    frame = await signed_in(request)
    if isinstance(frame, Response):
        return frame
    try:
        shown = _filters(request, ACCESS_FILTERS)
        return await access_csv(frame.actor, frame.app, _access_filters(shown))
    except SERVICE_ERRORS as exc:
        return refusal(request, frame, exc, back=f"{HOME}/access")


def _state(request: Request) -> str:
    state = request.query_params.get("state", "open")
    if state not in STATES:
        raise InvalidInput("state: open, acknowledged or all")
    return state


def _kind(request: Request) -> alerts.AlertKind | None:
    kind = request.query_params.get("kind") or None
    if kind is None:
        return None
    try:
        return alerts.AlertKind(kind)
    except ValueError:
        raise InvalidInput("kind: not a kind of alert") from None


@router.get(f"{HOME}/alerts")
async def alerts_page(request: Request) -> Response:
    frame = await signed_in(request)
    if isinstance(frame, Response):
        return frame
    try:
        state, kind = _state(request), _kind(request)
        query = alerts.AlertQuery(
            kind=kind, acknowledged=STATES[state], limit=PAGE_SIZE + 1,
            before=_position(request, ALERTS),
        )  # fmt: skip
        found = await alerts.list_alerts(frame.actor, frame.app, query)
    except SERVICE_ERRORS as exc:
        return refusal(request, frame, exc, back=f"{HOME}/alerts")
    shown = {"state": state} | ({"kind": kind.value} if kind else {})
    listed, more = _paged(request, found, lambda alert: alert.id, ALERTS, shown)
    done = request.query_params.get("done", "")
    return page(request, "security_alerts.html", frame=frame, sections=sections(frame),
                shown=shown, alerts=listed, more=more, kinds=list(alerts.AlertKind),
                states=list(STATES), done=done if done.isdigit() else "",
                may_ack=may(frame.actor, Area.ALERTS, write=True, agency_path=None),
                cursor="cursor" in request.query_params)  # fmt: skip


@router.post(f"{HOME}/alerts/{{alert_id}}/acknowledge")
async def acknowledge(request: Request, alert_id: str) -> Response:
    done = await posted(request)
    if isinstance(done, Response):
        return done
    frame, fields = done
    try:
        number = int(alert_id) if alert_id.isdigit() and len(alert_id) <= 19 else 0
        await alerts.acknowledge(frame.actor, frame.app, number, fields.get("note", "")[:1000])
    except SERVICE_ERRORS as exc:
        return refusal(request, frame, exc, back=f"{HOME}/alerts")
    return to(f"{HOME}/alerts?{urlencode({'state': 'acknowledged', 'done': number})}")

"""The web admin's verification radar page, /admin/security/radar: the radar's
alerts of the last 30 days per day (a server-drawn SVG bar chart of the forged
lookups they counted, and a table of the days with alerts), the client
addresses named most often and the registry numbers looked up most.

Owns: the HTTP shape of this page. Must not: read the audit trail or decide who
may see the figures (admin.services.radar_figures does: gateway-wide figures,
unscoped roles that may read alerts only).

Failure behaviour: no session -> sign-in; a role that may not read the radar ->
the 403 page; a database that cannot be reached -> the 503 page. No service's
internal text reaches the page.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from admin.services import radar_figures
from admin.services.errors import SERVICE_ERRORS
from admin.web.chart import bars
from admin.web.pages import Frame, page, refusal, signed_in
from admin.web.routes_security import HOME, sections

router = APIRouter(include_in_schema=False)
RADAR = f"{HOME}/radar"


@router.get(RADAR)
async def radar_page(request: Request) -> Response:
    frame = await signed_in(request)
    if isinstance(frame, Response):
        return frame
    try:
        figures = await radar_figures.radar_figures(frame.actor, frame.app)
    except SERVICE_ERRORS as exc:
        return refusal(request, frame, exc, back=f"{HOME}/audit")
    return _shown(request, frame, figures)


def _shown(request: Request, frame: Frame, figures: radar_figures.RadarFigures) -> Response:
    chart = bars([(day.day, day.forged_lookups) for day in figures.days])
    busy = [day for day in reversed(figures.days) if day.forgery_alerts or day.document_alerts]
    return page(request, "security_radar.html", frame=frame, sections=sections(frame),
                figures=figures, chart=chart, busy=busy)  # fmt: skip

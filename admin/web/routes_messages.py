"""The web admin's message-tracking pages, under /admin/messages.

Owns: the HTTP shape of these pages: the search (by registry number, by sender
address, listing that sender's newest messages the caller may see, or by a typed
trace code for roles that may read the access trail), one message's
tracking (every copy: target, state, attempts, delivered at, failure reason;
receipts) and revocation with a reason and a confirmation step. Must not: read
or change messages itself (admin.services.messages and .leaks do, and check role
and scope: outside a scoped role's subtree answers 404, as if it did not exist).

Failure behaviour: no session -> sign-in; a form without its CSRF field -> 403,
nothing done; a malformed registry number -> 404; a service refusal ->
pages.refusal; a bad reason -> the confirmation form again (422), nothing revoked.
"""

from __future__ import annotations

import re
from urllib.parse import quote

from fastapi import APIRouter, Request, Response

from admin.services import leaks, messages
from admin.services.actor import Area, Forbidden, OutOfScope, may
from admin.services.errors import ServiceError
from admin.web.pages import PREFIX, Frame, page, posted, refusal, signed_in, to
from gateway.store.revocation import check_revoke_reason

router = APIRouter(include_in_schema=False)
HOME = f"{PREFIX}/messages"
REFUSED = (Forbidden, OutOfScope, ServiceError)
Tracked = tuple[Frame, messages.MessageTracking]
REGISTRY = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,31}/[0-9]{4}/[0-9]{1,12}")


def _may(frame: Frame, area: Area, write: bool) -> bool:
    home = [frame.actor.agency] if frame.actor.agency else None
    return may(frame.actor, area, write=write, agency_path=home)


def _search(frame: Frame, request: Request, status: int = 200, **context: object) -> Response:
    shown: dict[str, object] = {"error": None, "typed": "", "trace": None, "sender": "",
                                "sent": None} | context  # fmt: skip
    return page(request, "messages_search.html", status, frame=frame,
                may_trace=_may(frame, Area.ACCESS_TRAIL, False), **shown)  # fmt: skip


@router.get(HOME)
async def search_page(request: Request) -> Response:
    frame = await signed_in(request)
    if isinstance(frame, Response):
        return frame
    if not _may(frame, Area.MESSAGES, False):
        return refusal(request, frame, Forbidden("messages"))
    sender = request.query_params.get("sender", "").strip()[:320]
    if not sender:
        return _search(frame, request)
    try:
        sent = await messages.sender_messages(frame.actor, frame.app, sender)
    except REFUSED as exc:
        return refusal(request, frame, exc, back=HOME)
    return _search(frame, request, sender=sender, sent=sent)


@router.post(f"{HOME}/find")
async def find(request: Request) -> Response:
    """A registry number leads to its page; a sender to the list of its messages; a
    trace code to the copy it names."""
    answer = await posted(request)
    if isinstance(answer, Response):
        return answer
    frame, fields = answer
    typed = fields.get("value", "").strip()[:320]
    if fields.get("by") == "sender":
        return to(f"{HOME}?sender={quote(typed, safe='@')}")
    if fields.get("by") != "code":
        if REGISTRY.fullmatch(typed):
            return to(f"{HOME}/{typed.upper()}")
        return _search(frame, request, 422, error="msg.bad_registry", typed=typed)
    try:
        trace = await leaks.trace_code(frame.actor, frame.app, typed)
    except REFUSED as exc:
        return refusal(request, frame, exc, back=HOME)
    return _search(frame, request, typed=typed, trace=trace)


async def _tracking(request: Request, registry: str) -> Tracked | Response:
    frame = await signed_in(request)
    if isinstance(frame, Response):
        return frame
    if not REGISTRY.fullmatch(registry):
        return page(request, "message.html", 404, frame=frame, message="page.not_found", back=HOME)
    try:
        return frame, await messages.show_message(frame.actor, frame.app, registry.upper())
    except REFUSED as exc:
        return refusal(request, frame, exc, back=HOME)


@router.post(HOME + "/{registry:path}/revoke")
async def revoke(request: Request, registry: str) -> Response:
    """First post: the confirmation page; with confirm=yes: revoke, then the message page."""
    answer = await posted(request)
    if isinstance(answer, Response):
        return answer
    frame, fields = answer
    if not _may(frame, Area.MESSAGES, True):
        return refusal(request, frame, Forbidden("messages"), back=HOME)
    found = await _tracking(request, registry)
    if isinstance(found, Response):
        return found
    frame, tracking = found
    reason = fields.get("reason", "")[:1000]
    try:
        reason = check_revoke_reason(reason)
    except ValueError as exc:
        return _message(request, frame, tracking, 422, reason=reason, reason_error=str(exc))
    if fields.get("confirm") != "yes":
        return page(request, "messages_revoke.html", frame=frame, m=tracking, reason=reason)
    data = messages.Revocation(registry=tracking.registry, reason=reason)
    try:
        await messages.revoke_message(frame.actor, frame.app, data, existing_ok=True)
    except REFUSED as exc:
        return refusal(request, frame, exc, back=f"{HOME}/{tracking.registry}")
    return to(f"{HOME}/{tracking.registry}?m=revoked")


def _message(request: Request, frame: Frame, tracking: messages.MessageTracking,
             status: int = 200, **context: object) -> Response:  # fmt: skip
    shown: dict[str, object] = {"reason": "", "reason_error": None} | context
    notice = "msg.revoked_now" if request.query_params.get("m") == "revoked" else None
    may_revoke = _may(frame, Area.MESSAGES, True) and tracking.status != "revoked"
    return page(request, "messages_one.html", status, frame=frame, m=tracking,
                may_revoke=may_revoke, notice=notice, **shown)  # fmt: skip


@router.get(HOME + "/{registry:path}")
async def one_message(request: Request, registry: str) -> Response:
    """Every copy of the message and its receipts; revocation for roles that may."""
    found = await _tracking(request, registry)
    if isinstance(found, Response):
        return found
    frame, tracking = found
    return _message(request, frame, tracking)

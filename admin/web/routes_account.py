"""The signed-in person's own account page: TOTP enrolment and recovery codes.

Owns: the HTTP shape of enrolment for oneself only (the address is always the
session's own account): the state, a new secret shown once as a QR image (a PNG
data: URI made on the server) and as text with new recovery codes, its
confirmation with a code, and a fresh set of recovery codes shown once. Must not:
keep or log a secret or a recovery code (they are rendered into the one answer
that shows them, which is never cached), or manage anyone else's second factor.

Failure behaviour: a refused request (a wrong code, nothing pending) -> a short
page with the service's safe message, nothing changed; a form without its CSRF
field -> 403.
"""

from __future__ import annotations

import base64

from fastapi import APIRouter, Request, Response

from admin.services.account_base import AccountError, Conflict, UnknownObject
from admin.services.account_services import AccountServices
from admin.services.errors import SERVICE_ERRORS
from admin.web.pages import PREFIX, Frame, page, posted, refusal, signed_in, to

router = APIRouter(include_in_schema=False)
ACCOUNT = f"{PREFIX}/account"


def _services(request: Request) -> AccountServices:
    services: AccountServices = request.app.state.accounts
    return services


def _refused(request: Request, frame: Frame, exc: AccountError) -> Response:
    status = 404 if isinstance(exc, UnknownObject) else 409 if isinstance(exc, Conflict) else 422
    return page(request, "message.html", status, frame=frame, message="page.refused",
                detail=str(exc), back=ACCOUNT)  # fmt: skip


@router.get(ACCOUNT)
async def account_page(request: Request) -> Response:
    frame = await signed_in(request)
    if isinstance(frame, Response):
        return frame
    try:
        state = await _services(request).two_factor.status(frame.actor, frame.actor.account)
    except AccountError as exc:
        return _refused(request, frame, exc)
    except SERVICE_ERRORS as exc:
        return refusal(request, frame, exc)
    return page(request, "account.html", frame=frame, state=state, enrolment=None, codes=None,
                done=request.query_params.get("done"))  # fmt: skip


@router.post(f"{ACCOUNT}/enrol")
async def enrol(request: Request) -> Response:
    got = await posted(request)
    if isinstance(got, Response):
        return got
    frame, _fields = got
    try:
        new = await _services(request).two_factor.enrol(frame.actor, frame.actor.account)
    except AccountError as exc:
        return _refused(request, frame, exc)
    except SERVICE_ERRORS as exc:
        return refusal(request, frame, exc, back=ACCOUNT)
    secret = new.uri.split("secret=", 1)[1].split("&", 1)[0] if "secret=" in new.uri else ""
    enrolment = {"qr": "data:image/png;base64," + base64.b64encode(new.qr_png).decode("ascii"),
                 "secret": secret, "uri": new.uri}  # fmt: skip
    state = {"totp": "pending"}
    return page(request, "account.html", frame=frame, state=state, enrolment=enrolment,
                codes=new.recovery_codes, done=None)  # fmt: skip


@router.post(f"{ACCOUNT}/confirm")
async def confirm(request: Request) -> Response:
    got = await posted(request)
    if isinstance(got, Response):
        return got
    frame, fields = got
    try:
        await _services(request).two_factor.confirm(
            frame.actor, frame.actor.account, fields.get("code", "")[:64]
        )
    except AccountError as exc:
        return _refused(request, frame, exc)
    except SERVICE_ERRORS as exc:
        return refusal(request, frame, exc, back=ACCOUNT)
    return to(f"{ACCOUNT}?done=confirmed")


@router.post(f"{ACCOUNT}/recovery-codes")
async def recovery_codes(request: Request) -> Response:
    got = await posted(request)
    if isinstance(got, Response):
        return got
    frame, _fields = got
    services = _services(request)
    try:
        codes = await services.two_factor.new_recovery_codes(frame.actor, frame.actor.account)
        state = await services.two_factor.status(frame.actor, frame.actor.account)
    except AccountError as exc:
        return _refused(request, frame, exc)
    except SERVICE_ERRORS as exc:
        return refusal(request, frame, exc, back=ACCOUNT)
    return page(request, "account.html", frame=frame, state=state, enrolment=None, codes=codes,
                done=None)  # fmt: skip

"""The directory pages of the web admin: the agency tree and an agency's page, with
its forms (add a child agency, add an employee, change names, move, retire after a
confirmation, trust a CA).

Owns: the HTTP shape of these pages (forms in, HTML out, 303 after a change) and
which forms a caller is shown (only those its role may use at that agency). Must
not: check permissions or scope, or read the database: every page calls
admin.services.directory or admin.services.employees with the signed-in actor.

Failure behaviour: a service refusal becomes a refusal page (outside the caller's
subtree or unknown: 404; the role may not: 403; bad input: 422 listing every
problem; nothing changed); a form without its CSRF field: 403, nothing done.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import quote

from fastapi import APIRouter, Request, Response
from pydantic import SecretStr

from admin.services import directory, employees
from admin.services.actor import Actor, Area, may
from admin.services.errors import SERVICE_ERRORS
from admin.web.pages import PREFIX, Frame, page, posted, refusal, signed_in, to
from admin.web.session import LARGE_FORM, MAX_FORM, Fields

router = APIRouter(include_in_schema=False)
HOME = f"{PREFIX}/directory"
KINDS = ("ministry", "entity", "governorate", "directorate", "branch", "region")
CLEARANCES = ("public", "internal", "confidential", "secret")


def agency_url(code: str) -> str:
    return f"{HOME}/agencies/{quote(code, safe='')}"


def employee_url(address: str) -> str:
    return f"{HOME}/employees/{quote(address, safe='@')}"


def may_write(actor: Actor, path: list[str] | tuple[str, ...] | None) -> bool:
    return may(actor, Area.DIRECTORY, write=True, agency_path=path)


def _home(actor: Actor) -> list[str] | None:
    return [actor.agency] if actor.agency else None


@router.get(HOME)
async def tree_page(request: Request) -> Response:
    frame = await signed_in(request)
    if isinstance(frame, Response):
        return frame
    try:
        roots = await directory.agency_tree(frame.actor, frame.app)
    except SERVICE_ERRORS as exc:
        return refusal(request, frame, exc)
    return page(request, "directory_tree.html", frame=frame, roots=roots,
                may_import=may_write(frame.actor, _home(frame.actor)))  # fmt: skip


@router.get(f"{HOME}/agencies/{{code}}")
async def agency_page(request: Request, code: str) -> Response:
    frame = await signed_in(request)
    if isinstance(frame, Response):
        return frame
    try:
        detail = await directory.show_agency(frame.actor, frame.app, code)
        staff = await employees.list_employees(frame.actor, frame.app, detail.code)
    except SERVICE_ERRORS as exc:
        return refusal(request, frame, exc, back=HOME)
    path = [*reversed(detail.ancestors), detail.code]
    writes = may_write(frame.actor, path)
    return page(request, "directory_agency.html", frame=frame, agency=detail, staff=staff,
                writes=writes, may_retire=writes and frame.actor.agency != detail.code,
                kinds=KINDS, clearances=CLEARANCES, done=request.query_params.get("done"),
                url=agency_url(detail.code))  # fmt: skip


Change = Callable[[Frame, Fields], Awaitable[str]]


async def change_form(
    request: Request, back: str, change: Change, max_bytes: int = MAX_FORM
) -> Response:
    """A form post: its frame and CSRF checked, then one service call (`change`,
    which answers where to go next); a refusal as a page, nothing changed."""
    got = await posted(request, max_bytes, back=back)
    if isinstance(got, Response):
        return got
    frame, fields = got
    try:
        where = await change(frame, fields)
    except SERVICE_ERRORS as exc:
        return refusal(request, frame, exc, back=back)
    return to(where)


def optional(fields: dict[str, str], name: str) -> str | None:
    value = fields.get(name, "").strip()
    return value or None


@router.post(f"{HOME}/agencies/{{code}}/children")
async def add_child(request: Request, code: str) -> Response:
    async def change(frame: Frame, fields: Fields) -> str:
        data = directory.AgencyAdd(
            code=fields.get("code", ""), name_en=fields.get("name_en", ""),
            name_ar=fields.get("name_ar", ""), kind=fields.get("kind", ""),
            domain=fields.get("domain", ""), parent=code,
        )  # fmt: skip
        added = await directory.add_agency(frame.actor, frame.app, data)
        return agency_url(added.code) + "?done=agency-added"

    return await change_form(request, agency_url(code), change)


@router.post(f"{HOME}/agencies/{{code}}/employees")
async def add_employee(request: Request, code: str) -> Response:
    async def change(frame: Frame, fields: Fields) -> str:
        password = fields.get("password", "")
        data = employees.EmployeeAdd(
            address=fields.get("address", ""), agency=code, name_en=fields.get("name_en", ""),
            name_ar=fields.get("name_ar", ""), role=fields.get("role", "") or "staff",
            clearance=fields.get("clearance", "") or "internal",
            password=SecretStr(password) if password else None,
        )  # fmt: skip
        added = await employees.add_employee(frame.actor, frame.app, data)
        return employee_url(added.address) + "?done=employee-added"

    return await change_form(request, agency_url(code), change)


@router.post(f"{HOME}/agencies/{{code}}/names")
async def change_names(request: Request, code: str) -> Response:
    async def change(frame: Frame, fields: Fields) -> str:
        data = directory.AgencyChange(
            code=code, name_en=optional(fields, "name_en"), name_ar=optional(fields, "name_ar")
        )
        changed = await directory.change_agency(frame.actor, frame.app, data)
        return agency_url(changed.code) + "?done=agency-changed"

    return await change_form(request, agency_url(code), change)


@router.post(f"{HOME}/agencies/{{code}}/move")
async def move(request: Request, code: str) -> Response:
    async def change(frame: Frame, fields: Fields) -> str:
        data = directory.AgencyMove(code=code, parent=optional(fields, "parent"))
        moved = await directory.move_agency(frame.actor, frame.app, data)
        return agency_url(moved.code) + "?done=agency-moved"

    return await change_form(request, agency_url(code), change)


@router.post(f"{HOME}/agencies/{{code}}/trusted-cas")
async def trust_ca(request: Request, code: str) -> Response:
    async def change(frame: Frame, fields: Fields) -> str:
        pem = fields.text_or_file("pem", "pem_file")
        data = directory.TrustCa(code=code, pem=pem, source="PEM")
        trusted = await directory.trust_ca(frame.actor, frame.app, data)
        return agency_url(trusted.agency) + "?done=ca-trusted"

    return await change_form(request, agency_url(code), change, LARGE_FORM)


@router.get(f"{HOME}/agencies/{{code}}/retire")
async def retire_page(request: Request, code: str) -> Response:
    """The confirmation step before retiring: shown only to whom may retire it."""
    frame = await signed_in(request)
    if isinstance(frame, Response):
        return frame
    try:
        detail = await directory.show_agency(frame.actor, frame.app, code)
    except SERVICE_ERRORS as exc:
        return refusal(request, frame, exc, back=HOME)
    path = [*reversed(detail.ancestors), detail.code]
    if not may_write(frame.actor, path) or frame.actor.agency == detail.code:
        return page(request, "message.html", 403, frame=frame, message="page.forbidden",
                    back=agency_url(detail.code))  # fmt: skip
    return page(request, "directory_retire.html", frame=frame, agency=detail,
                url=agency_url(detail.code))  # fmt: skip


@router.post(f"{HOME}/agencies/{{code}}/retire")
async def retire(request: Request, code: str) -> Response:
    async def change(frame: Frame, fields: Fields) -> str:
        retired = await directory.retire_agency(frame.actor, frame.app, code)
        return agency_url(retired.code) + "?done=agency-retired"

    return await change_form(request, agency_url(code), change)

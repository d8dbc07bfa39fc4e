"""An employee's page in the web admin: details and signing identities, with the
forms a role that may change the directory is shown (change names, role and
clearance; suspend or reactivate; reset the password; register a key or
certificate pasted as text or uploaded as a file, up to 1 MiB; revoke an identity).

Owns: the HTTP shape of these pages. Must not: check permissions or scope, or
read the database: every page calls admin.services.employees with the actor.

Failure behaviour: as every directory page (admin.web.routes_directory): a
refusal page, nothing changed; a password is never echoed into a page or a log.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from pydantic import SecretStr

from admin.services import directory, employees
from admin.services.errors import SERVICE_ERRORS
from admin.web.pages import Frame, page, refusal, signed_in
from admin.web.routes_directory import (
    CLEARANCES,
    HOME,
    agency_url,
    change_form,
    employee_url,
    may_write,
    optional,
)
from admin.web.session import LARGE_FORM, Fields
from policies.directory import EmployeeStatus

router = APIRouter(include_in_schema=False)
PAGE = f"{HOME}/employees/{{address}}"


@router.get(PAGE)
async def employee_page(request: Request, address: str) -> Response:
    frame = await signed_in(request)
    if isinstance(frame, Response):
        return frame
    try:
        person = await employees.show_employee(frame.actor, frame.app, address)
        agency = await directory.show_agency(frame.actor, frame.app, person.agency)
    except SERVICE_ERRORS as exc:
        return refusal(request, frame, exc, back=HOME)
    writes = may_write(frame.actor, [*reversed(agency.ancestors), agency.code])
    return page(request, "directory_employee.html", frame=frame, person=person,
                writes=writes, clearances=CLEARANCES, agency_link=agency_url(agency.code),
                url=employee_url(person.address),
                done=request.query_params.get("done"))  # fmt: skip


@router.post(f"{PAGE}/change")
async def change(request: Request, address: str) -> Response:
    async def act(frame: Frame, fields: Fields) -> str:
        data = employees.EmployeeChange(
            address=address, name_en=optional(fields, "name_en"),
            name_ar=optional(fields, "name_ar"), role=optional(fields, "role"),
            clearance=optional(fields, "clearance"),
        )  # fmt: skip
        changed = await employees.change_employee(frame.actor, frame.app, data)
        return employee_url(changed.address) + "?done=employee-changed"

    return await change_form(request, employee_url(address), act)


@router.post(f"{PAGE}/status")
async def status(request: Request, address: str) -> Response:
    async def act(frame: Frame, fields: Fields) -> str:
        wanted = fields.get("status", "")
        if wanted not in (EmployeeStatus.ACTIVE.value, EmployeeStatus.SUSPENDED.value):
            wanted = EmployeeStatus.SUSPENDED.value
        data = employees.StatusChange(address=address, status=EmployeeStatus(wanted))
        changed = await employees.set_employee_status(frame.actor, frame.app, data)
        return employee_url(changed.address) + "?done=employee-status"

    return await change_form(request, employee_url(address), act)


@router.post(f"{PAGE}/password")
async def password(request: Request, address: str) -> Response:
    async def act(frame: Frame, fields: Fields) -> str:
        data = employees.PasswordReset(address=address,
                                       password=SecretStr(fields.get("password", "")))  # fmt: skip
        done = await employees.reset_password(frame.actor, frame.app, data)
        return employee_url(done.address) + "?done=password-reset"

    return await change_form(request, employee_url(address), act)


@router.post(f"{PAGE}/identities")
async def register(request: Request, address: str) -> Response:
    async def act(frame: Frame, fields: Fields) -> str:
        material = fields.text_or_file("material", "material_file")
        data = employees.IdentityRegister(address=address, material=material, source="key")
        done = await employees.register_identity(frame.actor, frame.app, data)
        return employee_url(done.address) + "?done=identity-registered"

    return await change_form(request, employee_url(address), act, LARGE_FORM)


@router.post(f"{PAGE}/identities/revoke")
async def revoke(request: Request, address: str) -> Response:
    async def act(frame: Frame, fields: Fields) -> str:
        data = employees.IdentityRevoke(address=address, fingerprint=fields.get("fingerprint", ""))
        done = await employees.revoke_identity(frame.actor, frame.app, data)
        return employee_url(done.address) + "?done=identity-revoked"

    return await change_form(request, employee_url(address), act)

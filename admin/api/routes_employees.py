"""Routes of employees: list, show, add, change, status, password, signing identities.

Owns: the HTTP shape of the use cases of `admin.services.employees` (request
bodies with length limits, paging, status codes). Must not: check permissions or
scope, or change anything itself: each route makes one service call, whose
refusals become problem details. A password sent here is never logged or echoed.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response
from pydantic import BaseModel, Field, SecretStr

from admin.api.auth import current_actor
from admin.api.deps import context, cursors
from admin.api.paging import DEFAULT_LIMIT, MAX_LIMIT, Cursors, Page, page_after
from admin.context import App
from admin.services import employees
from admin.services.actor import Actor
from admin.services.directory import MAX_KEY_FILE
from admin.services.employees import EmployeeDetail, EmployeeView, IdentityResult, PasswordResult
from admin.services.model import Existing
from policies.directory import EmployeeStatus

router = APIRouter(tags=["employees"])
ACTOR = Depends(current_actor)
CONTEXT = Depends(context)
CURSORS = Depends(cursors)
Address = Annotated[
    str, Path(pattern=r"^[^\s/@]{1,64}@[^\s/@]{1,253}$", description="the employee's address")
]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT)]
Cursor = Annotated[str | None, Query(max_length=512)]
AgencyFilter = Annotated[str | None, Query(max_length=80, description="one agency only")]
ADDRESS_LEN, NAME_LEN, PASSWORD_LEN = 320, 200, 1024


class NewEmployee(BaseModel):
    address: str = Field(max_length=ADDRESS_LEN)
    agency: str = Field(max_length=80)
    name_en: str = Field(max_length=NAME_LEN)
    name_ar: str = Field(default="", max_length=NAME_LEN, description="default: name_en")
    role: str = Field(default="staff", max_length=64)
    clearance: str = Field(default="internal", max_length=32)
    password: SecretStr | None = Field(default=None, max_length=PASSWORD_LEN)


class EmployeeEdit(BaseModel):
    """The fields to change; a field left out stays as it is."""

    name_en: str | None = Field(default=None, max_length=NAME_LEN)
    name_ar: str | None = Field(default=None, max_length=NAME_LEN)
    role: str | None = Field(default=None, max_length=64)
    clearance: str | None = Field(default=None, max_length=32)


class NewStatus(BaseModel):
    status: EmployeeStatus


class NewPassword(BaseModel):
    password: SecretStr = Field(max_length=PASSWORD_LEN)


class Identity(BaseModel):
    material: str = Field(
        max_length=MAX_KEY_FILE, description="an armored OpenPGP public key or a PEM certificate"
    )


class IdentityRef(BaseModel):
    fingerprint: str = Field(max_length=200)


@router.get("/employees", response_model=Page[EmployeeView])
async def list_employees(
    agency: AgencyFilter = None, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None,
    actor: Actor = ACTOR, app: App = CONTEXT, signer: Cursors = CURSORS,
) -> Page[EmployeeView]:  # fmt: skip
    """Employees of one agency, or all the caller may see, by address."""
    rows = await employees.list_employees(actor, app, agency)
    listing = f"employees:{(agency or '').strip().upper()}"
    return page_after(rows, lambda e: e.address, cursor=cursor, limit=limit,
                      listing=listing, cursors=signer)  # fmt: skip


@router.get("/employees/{address}", response_model=EmployeeDetail)
async def show_employee(
    address: Address, actor: Actor = ACTOR, app: App = CONTEXT
) -> EmployeeDetail:
    """The employee with their registered signing identities."""
    return await employees.show_employee(actor, app, address)


@router.post(
    "/employees", response_model=EmployeeView, status_code=201,
    responses={200: {"model": EmployeeView, "description": "the same employee existed already"}},
)  # fmt: skip
async def add_employee(
    body: NewEmployee, response: Response, actor: Actor = ACTOR, app: App = CONTEXT
) -> EmployeeView:
    """Add an employee to an agency; the next employee code is issued.

    Safe to retry: when the same active employee exists already in that agency
    (every field equal, the same password if one is sent) the answer is 200 with
    it and nothing changes; another employee with that address is 409.
    """
    view, created = await employees.add_employee_once(
        actor, app, employees.EmployeeAdd(**body.model_dump())
    )
    if not created:
        response.status_code = 200
    return view


@router.patch("/employees/{address}", response_model=EmployeeView)
async def change_employee(
    address: Address, body: EmployeeEdit, actor: Actor = ACTOR, app: App = CONTEXT
) -> EmployeeView:
    """Change names, role or clearance (idempotent: the same change twice changes nothing)."""
    data = employees.EmployeeChange(address=address, **body.model_dump(exclude_none=True))
    return await employees.change_employee(actor, app, data)


@router.put("/employees/{address}/status", response_model=EmployeeView)
async def set_status(
    address: Address, body: NewStatus, actor: Actor = ACTOR, app: App = CONTEXT
) -> EmployeeView:
    """Set the status: active, suspended or left (idempotent: the status already set
    answers 200 and changes nothing). Only active employees log in and send."""
    data = employees.StatusChange(address=address, status=body.status)
    return await employees.put_employee_status(actor, app, data)


@router.post("/employees/{address}/password-reset", response_model=PasswordResult)
async def reset_password(
    address: Address, body: NewPassword, actor: Actor = ACTOR, app: App = CONTEXT
) -> PasswordResult:
    """Set a new password (checked for strength, stored as Argon2id; never echoed)."""
    data = employees.PasswordReset(address=address, password=body.password)
    return await employees.reset_password(actor, app, data)


@router.post(
    "/employees/{address}/identities", response_model=IdentityResult, status_code=201,
    responses={200: {"model": IdentityResult, "description": "registered to them already"}},
)  # fmt: skip
async def register_identity(
    address: Address, body: Identity, response: Response, actor: Actor = ACTOR,
    app: App = CONTEXT,
) -> IdentityResult:  # fmt: skip
    """Register an OpenPGP public key or an X.509 certificate as a signing identity.

    Safe to retry: an identity registered to this employee already answers 200
    with it and nothing changes (no audit event); one registered to another
    employee is 409.
    """
    data = employees.IdentityRegister(
        address=address, material=body.material.encode("utf-8"), source="material"
    )
    result = await employees.register_identity(actor, app, data, existing_ok=True)
    if isinstance(result, Existing):
        response.status_code = 200
    return result


@router.post("/employees/{address}/identities/revoke", response_model=IdentityResult)
async def revoke_identity(
    address: Address, body: IdentityRef, actor: Actor = ACTOR, app: App = CONTEXT
) -> IdentityResult:
    """Revoke a registered signing identity by fingerprint: new submissions signed
    with it are refused."""
    data = employees.IdentityRevoke(address=address, fingerprint=body.fingerprint)
    return await employees.revoke_identity(actor, app, data)

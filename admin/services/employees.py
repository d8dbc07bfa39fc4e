"""Employee use cases: list, show, add, change, suspend (any status), reset a password,
register or revoke a signing key or certificate.

Owns: one function per use case, each taking the `Actor` first and checking the
employee's agency path before reading or writing; the password strength check and
Argon2id hash; reading a key file's identity. Must not: write rows itself
(gateway.store.directory does) or prompt for anything.
"""

from __future__ import annotations

import base64

from pydantic import Field, SecretStr

from admin.context import App
from admin.services.actor import Actor, Area
from admin.services.directory import MAX_KEY_FILE, unknown_agency
from admin.services.errors import Conflict, InvalidInput, NotFound
from admin.services.model import Existing, Frozen
from admin.services.scope import acting, actor_subtree, check, directory_errors, home_path, tree
from gateway.store.directory import DirectoryError, EmployeeInput
from gateway.store.directory.scope import employee_agency
from gateway.store.directory.values import (
    clean_name,
    normalize_address,
    normalize_role,
    parse_clearance,
)
from keys import passwords
from keys.identities import IdentityError, check_identity_owner, inspect_identity
from policies.directory import EmployeeStatus


class EmployeeAdd(Frozen):
    address: str
    agency: str
    name_en: str
    name_ar: str = ""
    role: str = "staff"
    clearance: str = "internal"
    password: SecretStr | None = None


class EmployeeChange(Frozen):
    """The fields to change; None leaves a field as it is."""

    address: str
    name_en: str | None = None
    name_ar: str | None = None
    role: str | None = None
    clearance: str | None = None


class StatusChange(Frozen):
    address: str
    status: EmployeeStatus


class IdentityRevoke(Frozen):
    address: str
    fingerprint: str


class PasswordReset(Frozen):
    address: str
    password: SecretStr


class IdentityRegister(Frozen):
    address: str
    material: bytes = Field(repr=False)  # an OpenPGP public key or an X.509 certificate
    source: str = "key"  # named in error messages (e.g. the file name)


class EmployeeView(Frozen):
    address: str
    code: str
    agency: str
    name_en: str
    name_ar: str
    role: str
    clearance: str
    status: str
    has_password: bool


class IdentityView(Frozen):
    kind: str
    fingerprint: str
    added: str


class EmployeeDetail(EmployeeView):
    identities: list[IdentityView]


class PasswordResult(Frozen):
    ok: bool
    address: str


class IdentityResult(Frozen):
    address: str
    kind: str
    fingerprint: str


class IdentityExisting(IdentityResult, Existing):
    """The identity registered already to this employee (a retry): nothing written."""


def unknown_employee(address: str) -> NotFound:
    return NotFound(f"unknown employee {address.strip().lower()!r}")


def _invalid(message: str) -> InvalidInput:
    return InvalidInput(message, problems=[message])


async def _employee_path(app: App, address: str) -> tuple[str, ...] | None:
    async with app.sessions() as session:
        code = await employee_agency(session, address)
    return (await tree(app)).path(code)


async def list_employees(actor: Actor, app: App, agency: str | None = None) -> list[EmployeeView]:
    """Employees of one agency, or every employee the actor may see."""
    agencies = await tree(app)
    if agency is not None:
        path = agencies.path(agency.strip().upper())
        check(actor, Area.DIRECTORY, write=False, path=path, missing=unknown_agency(agency))
    else:
        check(actor, Area.DIRECTORY, write=False, path=home_path(actor, agencies))
    seen = actor_subtree(actor, agencies)
    with directory_errors():
        rows = await app.directory.list_employees(agency)
    return [EmployeeView(**r) for r in rows if seen is None or r["agency"] in seen]


async def show_employee(actor: Actor, app: App, address: str) -> EmployeeDetail:
    """The employee with their registered signing identities."""
    path = await _employee_path(app, address)
    check(actor, Area.DIRECTORY, write=False, path=path, missing=unknown_employee(address))
    with directory_errors():
        view = await app.directory.show_employee(address)
    return EmployeeDetail(**view)


def _hash_new_password(password: SecretStr, address: str) -> str:
    try:
        passwords.check_new_password(password.get_secret_value(), address=address.strip().lower())
    except passwords.WeakPasswordError as exc:
        raise _invalid(str(exc)) from None
    return passwords.hash_password(password.get_secret_value())


async def add_employee(actor: Actor, app: App, data: EmployeeAdd) -> EmployeeView:
    """Add an employee to an agency in scope; the next employee code is issued."""
    agencies = await tree(app)
    path = agencies.path(data.agency.strip().upper())
    check(actor, Area.DIRECTORY, write=True, path=path, missing=unknown_agency(data.agency))
    digest = _hash_new_password(data.password, data.address) if data.password else None
    with acting(actor), directory_errors():
        row = await app.directory.add_employee(
            EmployeeInput(
                data.address, data.agency, data.name_en, data.name_ar, data.role,
                data.clearance, digest,
            ),
            actor=actor.audit_name,
        )  # fmt: skip
    return EmployeeView(**row)


def _same_fields(data: EmployeeAdd, existing: EmployeeView) -> bool:
    try:
        wanted = (
            normalize_address(data.address), data.agency.strip().upper(),
            clean_name(data.name_en, "English name"),
            clean_name(data.name_ar or data.name_en, "Arabic name"),
            normalize_role(data.role), parse_clearance(data.clearance).label,
        )  # fmt: skip
    except DirectoryError:
        return False
    have = (existing.address, existing.agency, existing.name_en, existing.name_ar,
            existing.role, existing.clearance)  # fmt: skip
    return existing.status == EmployeeStatus.ACTIVE.value and wanted == have


async def _same_employee(app: App, data: EmployeeAdd, existing: EmployeeView) -> bool:
    """Whether an add asks for exactly the active employee that exists: every field
    equal after normalisation, and the password (if one is given) the one stored."""
    if not _same_fields(data, existing):
        return False
    stored, _ = await app.directory.password_hash(existing.address)
    if data.password is None or stored is None:
        return data.password is None and stored is None
    try:
        return passwords.verify_password(stored, data.password.get_secret_value())
    except passwords.PasswordHashError:
        return False


async def add_employee_once(actor: Actor, app: App, data: EmployeeAdd) -> tuple[EmployeeView, bool]:
    """Add an employee, safe to retry: (the employee, True when added now).

    When the same active employee already exists in the same agency (see
    `_same_employee`) it is returned unchanged with False and nothing is audited;
    any other employee with that address is a `Conflict`, as for `add_employee`.
    """
    try:
        return await add_employee(actor, app, data), True
    except Conflict as clash:
        try:
            row = await app.directory.show_employee(data.address)
        except DirectoryError:
            raise clash from None
        existing = EmployeeView(**{name: row[name] for name in EmployeeView.model_fields})
        if not await _same_employee(app, data, existing):
            raise clash from None
    return existing, False


async def suspend_employee(actor: Actor, app: App, address: str) -> EmployeeView:
    """Suspend: no login, no submission, no new mail to them."""
    change = StatusChange(address=address, status=EmployeeStatus.SUSPENDED)
    return await set_employee_status(actor, app, change)


async def set_employee_status(actor: Actor, app: App, data: StatusChange) -> EmployeeView:
    """Suspend, reactivate, or mark as left (only active employees log in and send)."""
    path = await _employee_path(app, data.address)
    check(actor, Area.DIRECTORY, write=True, path=path, missing=unknown_employee(data.address))
    with acting(actor), directory_errors():
        row = await app.directory.set_status(data.address, data.status, actor=actor.audit_name)
    return EmployeeView(**row)


async def put_employee_status(actor: Actor, app: App, data: StatusChange) -> EmployeeView:
    """Set the status, safe to repeat: an employee already in it is returned unchanged
    (nothing audited) where `set_employee_status` refuses with a `Conflict`."""
    try:
        return await set_employee_status(actor, app, data)
    except Conflict as clash:
        with directory_errors():
            row = await app.directory.show_employee(data.address)
        if row["status"] != data.status.value:
            raise clash from None
        return EmployeeView(**{name: row[name] for name in EmployeeView.model_fields})


async def change_employee(actor: Actor, app: App, data: EmployeeChange) -> EmployeeView:
    """Change names, role or clearance; the audit event records before and after."""
    path = await _employee_path(app, data.address)
    check(actor, Area.DIRECTORY, write=True, path=path, missing=unknown_employee(data.address))
    changes = data.model_dump(exclude={"address"}, exclude_none=True)
    with acting(actor), directory_errors():
        row = await app.directory.change_employee(data.address, changes, actor=actor.audit_name)
    return EmployeeView(**row)


async def reset_password(actor: Actor, app: App, data: PasswordReset) -> PasswordResult:
    """Set a new password (checked for strength, stored as Argon2id)."""
    path = await _employee_path(app, data.address)
    check(actor, Area.DIRECTORY, write=True, path=path, missing=unknown_employee(data.address))
    digest = _hash_new_password(data.password, data.address)
    with acting(actor), directory_errors():
        await app.directory.set_password(data.address, digest, actor=actor.audit_name)
    return PasswordResult(ok=True, address=data.address.strip().lower())


def _material(data: bytes) -> str:
    """The imported key as stored: text as is, binary as base64 with a prefix."""
    try:
        return data.decode("ascii")
    except UnicodeDecodeError:
        return "base64:" + base64.b64encode(data).decode("ascii")


async def register_identity(
    actor: Actor, app: App, data: IdentityRegister, *, existing_ok: bool = False
) -> IdentityResult:
    """Register an OpenPGP key or X.509 certificate as the employee's signing identity.

    An identity registered already is a `Conflict`; with `existing_ok`, one
    registered to this same employee is returned as an `IdentityExisting`
    (nothing written or audited): a safe retry. Registered to another employee,
    it stays a `Conflict`.
    """
    if len(data.material) > MAX_KEY_FILE:
        raise _invalid(f"{data.source}: larger than {MAX_KEY_FILE // 1024} KiB; not a key file")
    try:
        identity = inspect_identity(data.material)
    except IdentityError as exc:
        raise _invalid(f"{data.source}: {exc}") from None
    path = await _employee_path(app, data.address)
    check(actor, Area.DIRECTORY, write=True, path=path, missing=unknown_employee(data.address))
    try:
        with acting(actor), directory_errors():
            owner, code = await app.directory.employee_identity_facts(data.address)
            try:
                check_identity_owner(identity, owner, code)
            except IdentityError as exc:
                raise _invalid(str(exc)) from None
            row = await app.directory.add_identity(
                owner,
                kind=identity.kind,
                fingerprint=identity.fingerprint,
                material=_material(data.material),
                actor=actor.audit_name,
            )
    except Conflict as clash:
        if not existing_ok:
            raise
        return await _existing_identity(app, data.address, identity.fingerprint, clash)
    return IdentityResult(**row)


async def _existing_identity(
    app: App, address: str, fingerprint: str, clash: Conflict
) -> IdentityExisting:
    """The identity as registered to this employee; `clash` when it is not theirs."""
    with directory_errors():
        view = await app.directory.show_employee(address)
    for known in view["identities"]:
        if known["fingerprint"] == fingerprint:
            return IdentityExisting(
                address=view["address"], kind=known["kind"], fingerprint=fingerprint
            )
    raise clash


async def revoke_identity(actor: Actor, app: App, data: IdentityRevoke) -> IdentityResult:
    """Revoke a registered signing key or certificate: new submissions signed with it
    are refused."""
    path = await _employee_path(app, data.address)
    check(actor, Area.DIRECTORY, write=True, path=path, missing=unknown_employee(data.address))
    with acting(actor), directory_errors():
        row = await app.directory.remove_identity(
            data.address, data.fingerprint, actor=actor.audit_name
        )
    return IdentityResult(**row)

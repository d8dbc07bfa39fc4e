"""Admin role grants (DESIGN §12): grant, revoke and list, each one audited transaction.

Owns: who holds which role, and the rules for changing that: a grant names an
active directory employee; scoped roles name an existing, active agency; the
acting account must have the grant in scope (`require_grant`), and the
employee must lie in its subtree too. Revoking a role ends the sessions opened
under it. Must not: check credentials (admin.services.login does) or print.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from admin.services.account_base import (
    AccountError,
    AccountPart,
    Conflict,
    UnknownObject,
    active_agency,
    agency_by_code,
    agency_path,
    all_agency_paths,
    employee_by_address,
    require_account_read,
    stamp,
)
from admin.services.actor import SCOPED_ROLES, Actor, Area, Role, in_scope, require, require_grant
from gateway.store.admin_models import AdminGrant, AdminSession
from gateway.store.db import writing
from gateway.store.models import Employee
from policies.directory import EmployeeStatus

# Which grant a person signs in under when they hold several and name none.
ROLE_ORDER = (Role.SYSTEM_ADMIN, Role.SECURITY_AUDITOR, Role.AGENCY_ADMIN, Role.REGISTRAR)


def parse_role(text: str | Role) -> Role:
    try:
        return Role(str(text).strip().lower())
    except ValueError:
        names = ", ".join(r.value for r in Role)
        raise AccountError(f"unknown role {str(text)!r} (one of: {names})") from None


def check_scope_argument(role: Role, agency: str | None) -> str | None:
    """The agency a grant or token of `role` names: required for scoped roles only."""
    if role in SCOPED_ROLES and not (agency and agency.strip()):
        raise AccountError(f"role {role.value} needs an agency (--agency CODE)")
    if role not in SCOPED_ROLES and agency:
        raise AccountError(f"role {role.value} is not scoped to an agency")
    return agency.strip().upper() if agency else None


@dataclass(frozen=True)
class GrantView:
    id: int
    address: str
    role: str
    agency: str | None
    granted_by: str
    granted_at: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def actor(self, *, client: str, channel: str) -> Actor:
        """The Actor a person signed in under this grant acts as."""
        return Actor(self.address, Role(self.role), self.agency, client=client, channel=channel)


def _view(grant: AdminGrant, address: str) -> GrantView:
    return GrantView(
        id=grant.id,
        address=address,
        role=grant.role,
        agency=grant.scope or None,
        granted_by=grant.granted_by,
        granted_at=grant.granted_at,
    )


def _facts(role: Role, agency: str | None) -> dict[str, Any]:
    return {"role": role.value, "agency": agency}


class Grants(AccountPart):
    """Role grants; each public coroutine is one audited transaction (or one read)."""

    async def grant(
        self, actor: Actor, address: str, role: str | Role, agency: str | None = None
    ) -> GrantView:
        """Grant `role` (at `agency` for scoped roles) to the employee `address`."""
        wanted = parse_role(role)
        scope = check_scope_argument(wanted, agency)
        async with writing(self._sessions) as session:
            employee = await employee_by_address(session, address)
            require(actor, Area.ACCOUNTS, write=True,
                    agency_path=await agency_path(session, employee.agency_id))  # fmt: skip
            agency_id, path = None, None
            if scope is not None:
                found = await active_agency(session, scope)
                agency_id, path = found.id, await agency_path(session, found.id)
            require_grant(actor, wanted, path)
            if employee.status != EmployeeStatus.ACTIVE.value:
                raise Conflict(f"employee {employee.address} is {employee.status}")
            exists = await session.scalar(
                select(AdminGrant.id).where(
                    AdminGrant.employee_id == employee.id,
                    AdminGrant.role == wanted.value,
                    AdminGrant.scope == (scope or ""),
                )
            )
            if exists is not None:
                raise Conflict(f"{employee.address} already holds {_label(wanted, scope)}")
            row = AdminGrant(
                employee_id=employee.id, role=wanted.value, scope=scope or "",
                agency_id=agency_id, granted_by=actor.audit_name, granted_at=stamp(self._now()),
            )  # fmt: skip
            session.add(row)
            try:
                await session.flush()
            except IntegrityError:
                raise Conflict(
                    f"{employee.address} already holds {_label(wanted, scope)}"
                ) from None
            await self._audit(session, actor, "admin.grant", employee.address,
                              before=None, after=_facts(wanted, scope))  # fmt: skip
            return _view(row, employee.address)

    async def revoke(
        self, actor: Actor, address: str, role: str | Role, agency: str | None = None
    ) -> GrantView:
        """Take `role` (at `agency`) away from `address`; its sessions end with it."""
        wanted = parse_role(role)
        scope = check_scope_argument(wanted, agency)
        async with writing(self._sessions) as session:
            employee = await employee_by_address(session, address)
            require(actor, Area.ACCOUNTS, write=True,
                    agency_path=await agency_path(session, employee.agency_id))  # fmt: skip
            path = None
            if scope is not None:
                found = await agency_by_code(session, scope)
                path = await agency_path(session, found.id)
            require_grant(actor, wanted, path)
            row = await session.scalar(
                select(AdminGrant).where(
                    AdminGrant.employee_id == employee.id,
                    AdminGrant.role == wanted.value,
                    AdminGrant.scope == (scope or ""),
                )
            )
            if row is None:
                raise UnknownObject(f"{employee.address} does not hold {_label(wanted, scope)}")
            view = _view(row, employee.address)
            ended = await session.execute(
                delete(AdminSession).where(AdminSession.grant_id == row.id)
            )
            await session.delete(row)
            await session.flush()
            await self._audit(
                session, actor, "admin.revoke", employee.address,
                before=_facts(wanted, scope), after=None,
                extra={"sessions_ended": int(getattr(ended, "rowcount", 0) or 0)},
            )  # fmt: skip
            return view

    async def list_grants(self, actor: Actor, address: str | None = None) -> list[GrantView]:
        """Grants the actor may see (both the employee and the agency in its subtree)."""
        async with self._sessions() as session:
            await require_account_read(session, actor)
            paths = await all_agency_paths(session)
            stmt = (
                select(AdminGrant, Employee.address, Employee.agency_id)
                .join(Employee, Employee.id == AdminGrant.employee_id)
                .order_by(Employee.address, AdminGrant.role, AdminGrant.scope)
            )
            if address is not None:
                stmt = stmt.where(Employee.address == address.strip().lower())
            rows = (await session.execute(stmt)).all()
        return [
            _view(grant, addr)
            for grant, addr, employee_agency in rows
            if in_scope(actor, paths.get(employee_agency))
            and (grant.agency_id is None or in_scope(actor, paths.get(grant.agency_id)))
        ]

    async def grants_of(self, address: str) -> list[GrantView]:
        """Every grant an active employee holds, in ROLE_ORDER (for signing in)."""
        async with self._sessions() as session:
            rows = (
                await session.execute(
                    select(AdminGrant, Employee.address)
                    .join(Employee, Employee.id == AdminGrant.employee_id)
                    .where(
                        Employee.address == address.strip().lower(),
                        Employee.status == EmployeeStatus.ACTIVE.value,
                    )
                )
            ).all()
        views = [_view(grant, addr) for grant, addr in rows]
        return sorted(views, key=lambda v: (ROLE_ORDER.index(Role(v.role)), v.agency or ""))


def _label(role: Role, scope: str | None) -> str:
    return f"{role.value} at {scope}" if scope else role.value

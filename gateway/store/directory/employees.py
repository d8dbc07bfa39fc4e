"""Employees in the directory: listing, showing, login facts, adding, changing, status,
password.

Owns: gap-free employee codes (a counter on the locked agency row, consumed in
the adding transaction). Must not: hash passwords (keys/ does) or touch agencies'
other fields.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.store import audit
from gateway.store.db import transaction, utcnow
from gateway.store.directory.base import DirectoryPart
from gateway.store.directory.values import (
    DirectoryConflict,
    DirectoryError,
    EmployeeInput,
    clean_name,
    employee_view,
    normalize_address,
    normalize_role,
    parse_clearance,
)
from gateway.store.models import Employee, SigningIdentity
from policies.codes import EmployeeCode
from policies.directory import AgencyStatus, Clearance, EmployeeStatus


class EmployeeRegistry(DirectoryPart):
    """Employee operations; each public coroutine is one audited transaction."""

    async def list_employees(self, agency: str | None = None) -> list[dict[str, Any]]:
        async with self._sessions() as session:
            codes = await self._codes_by_id(session)
            stmt = select(Employee).order_by(Employee.address)
            if agency is not None:
                stmt = stmt.where(Employee.agency_id == (await self._agency(session, agency)).id)
            rows = (await session.scalars(stmt)).all()
            return [employee_view(e, codes[e.agency_id]) for e in rows]

    async def show_employee(self, address: str) -> dict[str, Any]:
        async with self._sessions() as session:
            employee = await self._employee(session, address)
            codes = await self._codes_by_id(session)
            view = employee_view(employee, codes[employee.agency_id])
            identities = (
                await session.scalars(
                    select(SigningIdentity)
                    .where(SigningIdentity.employee_id == employee.id)
                    .order_by(SigningIdentity.id)
                )
            ).all()
            view["identities"] = [
                {"kind": i.kind, "fingerprint": i.fingerprint, "added": i.created_at}
                for i in identities
            ]
            return view

    async def password_hash(self, address: str) -> tuple[str | None, str]:
        """(hash or None, status) for login; unknown employees give (None, "unknown")."""
        async with self._sessions() as session:
            row = (
                await session.execute(
                    select(Employee.password_hash, Employee.status).where(
                        Employee.address == address.strip().lower()
                    )
                )
            ).first()
            return (row[0], row[1]) if row else (None, "unknown")

    async def active_employee_id(self, address: str) -> int | None:
        """The id of the active employee with this address, or None."""
        async with self._sessions() as session:
            found: int | None = await session.scalar(
                select(Employee.id).where(
                    Employee.address == address.strip().lower(),
                    Employee.status == EmployeeStatus.ACTIVE.value,
                )
            )
            return found

    async def add_employee(self, data: EmployeeInput, *, actor: str) -> dict[str, Any]:
        """Add an employee and issue the next employee code of their agency."""
        async with transaction(self._sessions) as session:
            employee, agency_code = await self._add_employee(session, data, actor=actor)
            return employee_view(employee, agency_code)

    async def _add_employee(
        self, session: AsyncSession, data: EmployeeInput, *, actor: str
    ) -> tuple[Employee, str]:
        address = normalize_address(data.address)
        clearance = parse_clearance(data.clearance)
        role = normalize_role(data.role)
        name_en = clean_name(data.name_en, "English name")
        name_ar = clean_name(data.name_ar or data.name_en, "Arabic name")
        exists = await session.scalar(select(Employee.id).where(Employee.address == address))
        if exists is not None:
            raise DirectoryConflict(f"employee {address} already exists")
        agency = await self._agency(session, data.agency, lock=True)
        if agency.status != AgencyStatus.ACTIVE.value:
            raise DirectoryError(f"agency {agency.code} is {agency.status}")
        if address.rsplit("@", 1)[1] != agency.domain:
            raise DirectoryError(
                f"address {address} is not in agency {agency.code}'s domain {agency.domain}"
            )
        # Gap-free: the serial comes from a counter on the (locked) agency row and
        # is consumed in this transaction; a rollback gives it back.
        serial = agency.next_employee_serial
        code = str(EmployeeCode(agency.code, serial))
        agency.next_employee_serial = serial + 1
        employee = Employee(
            address=address,
            agency_id=agency.id,
            name_en=name_en,
            name_ar=name_ar,
            role=role,
            clearance=int(clearance),
            status=EmployeeStatus.ACTIVE.value,
            serial=serial,
            code=code,
            password_hash=data.password_hash,
            created_at=utcnow(),
        )
        session.add(employee)
        try:
            await session.flush()
        except IntegrityError:
            raise DirectoryConflict(f"employee {address} already exists") from None
        details = {
            "code": code,
            "agency": agency.code,
            "role": role,
            "clearance": clearance.label,
            "password_set": data.password_hash is not None,
        }
        await self._changed(session, actor, "employee.add", address, details)
        return employee, agency.code

    async def set_status(
        self, address: str, status: EmployeeStatus, *, actor: str
    ) -> dict[str, Any]:
        async with transaction(self._sessions) as session:
            employee = await self._employee(session, address)
            old = employee.status
            if old == status.value:
                raise DirectoryConflict(f"employee {employee.address} is already {status.value}")
            employee.status = status.value
            await self._changed(
                session,
                actor,
                f"employee.{'suspend' if status is EmployeeStatus.SUSPENDED else 'status'}",
                employee.address,
                {"from": old, "to": status.value},
            )
            codes = await self._codes_by_id(session)
            return employee_view(employee, codes[employee.agency_id])

    async def change_employee(
        self, address: str, changes: Mapping[str, str], *, actor: str
    ) -> dict[str, Any]:
        """Change an employee's names, role or clearance (`changes` by field name); the
        audit event records each changed field before and after."""
        async with transaction(self._sessions) as session:
            employee = await self._employee(session, address)
            wanted: dict[str, Any] = {}
            for name, value in changes.items():
                if name == "clearance":
                    wanted[name] = int(parse_clearance(value))
                elif name == "role":
                    wanted[name] = normalize_role(value)
                elif name in ("name_en", "name_ar"):
                    label = "English name" if name == "name_en" else "Arabic name"
                    wanted[name] = clean_name(value, label)
                else:
                    raise DirectoryError(f"employee field {name!r} cannot be changed")
            diff = {
                name: {"from": getattr(employee, name), "to": value}
                for name, value in wanted.items()
                if getattr(employee, name) != value
            }
            for name, change in diff.items():
                setattr(employee, name, change["to"])
            if "clearance" in diff:
                diff["clearance"] = {
                    side: Clearance(level).label for side, level in diff["clearance"].items()
                }
            if diff:
                await self._changed(session, actor, "employee.change", employee.address, diff)
            codes = await self._codes_by_id(session)
            return employee_view(employee, codes[employee.agency_id])

    async def set_password(self, address: str, password_hash: str, *, actor: str) -> None:
        async with transaction(self._sessions) as session:
            employee = await self._employee(session, address)
            employee.password_hash = password_hash
            await audit.append(
                session,
                self._audit_key,
                actor=actor,
                action="employee.set-password",
                target=employee.address,
            )

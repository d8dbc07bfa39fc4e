"""Shared ground of the directory's parts: the session factory, audit and version.

Owns: `directory_version` (read and bump), the locked lookups every part uses,
`_changed` (audit event + version bump in the caller's transaction) and
`load_snapshot`. Must not: change directory rows itself.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.store import audit
from gateway.store.directory.values import DirectoryNotFound
from gateway.store.models import Agency, Employee, Meta
from policies.directory import (
    AgencyKind,
    AgencyRecord,
    AgencyStatus,
    Clearance,
    DirectorySnapshot,
    EmployeeRecord,
    EmployeeStatus,
)

DIRECTORY_VERSION = "directory_version"


async def bump_version(session: AsyncSession) -> None:
    result = await session.execute(
        update(Meta).where(Meta.key == DIRECTORY_VERSION).values(value=Meta.value + 1)
    )
    if getattr(result, "rowcount", 0) == 0:
        session.add(Meta(key=DIRECTORY_VERSION, value=1))
        await session.flush()


async def directory_version(session: AsyncSession) -> int:
    value = await session.scalar(select(Meta.value).where(Meta.key == DIRECTORY_VERSION))
    return int(value or 0)


class DirectoryPart:
    """What every directory part holds: the sessions and the audit key."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], audit_key: bytes) -> None:
        self._sessions = sessions
        self._audit_key = audit_key

    @staticmethod
    async def _agency(session: AsyncSession, code: str, *, lock: bool = False) -> Agency:
        stmt = select(Agency).where(Agency.code == code.strip().upper())
        if lock:
            stmt = stmt.with_for_update()
        agency = await session.scalar(stmt)
        if agency is None:
            raise DirectoryNotFound(f"unknown agency {code.strip().upper()!r}")
        return agency

    @staticmethod
    async def _employee(session: AsyncSession, address: str) -> Employee:
        employee = await session.scalar(
            select(Employee).where(Employee.address == address.strip().lower())
        )
        if employee is None:
            raise DirectoryNotFound(f"unknown employee {address.strip().lower()!r}")
        return employee

    @staticmethod
    async def _codes_by_id(session: AsyncSession) -> dict[int, str]:
        return {row[0]: row[1] for row in await session.execute(select(Agency.id, Agency.code))}

    async def snapshot(self) -> DirectorySnapshot:
        """Read the whole directory into an immutable snapshot (one consistent read)."""
        async with self._sessions() as session:
            return await load_snapshot(session)

    async def version(self) -> int:
        async with self._sessions() as session:
            return await directory_version(session)

    async def _changed(
        self, session: AsyncSession, actor: str, action: str, target: str, details: Any
    ) -> None:
        """Every directory change: its audit event and a `directory_version` bump,
        in the caller's transaction (so they commit or roll back with the change)."""
        await audit.append(
            session, self._audit_key, actor=actor, action=action, target=target, details=details
        )
        await bump_version(session)


async def load_snapshot(session: AsyncSession) -> DirectorySnapshot:
    agencies = (await session.scalars(select(Agency))).all()
    codes = {a.id: a.code for a in agencies}
    records = [
        AgencyRecord(
            code=a.code,
            name_en=a.name_en,
            name_ar=a.name_ar,
            kind=AgencyKind(a.kind),
            domain=a.domain,
            parent=codes[a.parent_id] if a.parent_id else None,
            status=AgencyStatus(a.status),
        )
        for a in agencies
    ]
    rows = (
        await session.execute(
            select(
                Employee.address,
                Employee.agency_id,
                Employee.name_en,
                Employee.name_ar,
                Employee.role,
                Employee.clearance,
                Employee.status,
                Employee.code,
            )
        )
    ).all()
    staff = [
        EmployeeRecord(
            address=address,
            agency=codes[agency_id],
            name_en=name_en,
            name_ar=name_ar,
            role=role,
            clearance=Clearance(clearance),
            status=EmployeeStatus(status),
            code=code,
        )
        for address, agency_id, name_en, name_ar, role, clearance, status, code in rows
    ]
    return DirectorySnapshot.build(records, staff)

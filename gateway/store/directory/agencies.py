"""Agencies in the directory: listing, showing, adding, changing, moving, retiring,
trusting a CA.

Owns: the agency tree's changes (a move never makes a cycle), each one audited
transaction. Must not: touch employees or identities.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.store.db import transaction, utcnow
from gateway.store.directory.base import DirectoryPart
from gateway.store.directory.values import (
    AgencyInput,
    DirectoryConflict,
    DirectoryError,
    agency_view,
    checked_agency_code,
    clean_name,
    new_agency,
    parse_kind,
    refuse_clash,
)
from gateway.store.models import Agency, AgencyCa, Employee
from policies.codes import confusable_key
from policies.directory import AgencyStatus, DirectorySnapshot


class AgencyRegistry(DirectoryPart):
    """Agency operations; each public coroutine is one audited transaction."""

    async def list_agencies(self) -> list[dict[str, Any]]:
        async with self._sessions() as session:
            codes = await self._codes_by_id(session)
            rows = (await session.scalars(select(Agency).order_by(Agency.code))).all()
            return [agency_view(a, codes.get(a.parent_id) if a.parent_id else None) for a in rows]

    async def show_agency(self, code: str) -> dict[str, Any]:
        """The agency, its ancestors (nearest first) and its whole subtree."""
        snapshot = await self.snapshot()
        async with self._sessions() as session:
            agency = await self._agency(session, code)
            codes = await self._codes_by_id(session)
            view = agency_view(agency, codes.get(agency.parent_id) if agency.parent_id else None)
            staff = await session.scalar(
                select(func.count()).select_from(Employee).where(Employee.agency_id == agency.id)
            )
            cas = (
                await session.scalars(select(AgencyCa).where(AgencyCa.agency_id == agency.id))
            ).all()
        view["ancestors"] = list(snapshot.ancestors.get(agency.code, ()))
        view["subtree"] = _subtree_tree(snapshot, agency.code)
        view["employees"] = int(staff or 0)
        view["trusted_cas"] = [{"fingerprint": c.fingerprint, "subject": c.subject} for c in cas]
        return view

    async def _validate_agency(self, session: AsyncSession, data: AgencyInput) -> Agency:
        parent_id: int | None = None
        if data.parent:
            parent_id = (await self._agency(session, data.parent)).id
        code = checked_agency_code(data.code)
        existing = await session.scalar(
            select(Agency.code).where(
                (Agency.code == code) | (Agency.code_key == confusable_key(code))
            )
        )
        refuse_clash(code, existing)
        return new_agency(data, parent_id)

    async def add_agency(self, data: AgencyInput, *, actor: str) -> dict[str, Any]:
        async with transaction(self._sessions) as session:
            agency = await self._add_agency(session, data, actor=actor)
            return agency_view(agency, data.parent.strip().upper() if data.parent else None)

    async def _add_agency(self, session: AsyncSession, data: AgencyInput, *, actor: str) -> Agency:
        agency = await self._validate_agency(session, data)
        session.add(agency)
        try:
            await session.flush()
        except IntegrityError:
            raise DirectoryConflict(f"agency {agency.code} already exists") from None
        await self._changed(
            session,
            actor,
            "agency.add",
            agency.code,
            {"kind": agency.kind, "domain": agency.domain, "parent": data.parent},
        )
        return agency

    async def set_parent(self, code: str, parent: str | None, *, actor: str) -> dict[str, Any]:
        """Move an agency under another; refuses a move that would make a cycle."""
        async with transaction(self._sessions) as session:
            agency = await self._agency(session, code, lock=True)
            parent_id: int | None = None
            if parent:
                target = await self._agency(session, parent)
                parents = {
                    row[0]: row[1]
                    for row in await session.execute(select(Agency.id, Agency.parent_id))
                }
                walk: int | None = target.id
                while walk is not None:
                    if walk == agency.id:
                        raise DirectoryError(
                            f"cannot move {agency.code} under {target.code}:"
                            " that would make a cycle in the agency tree"
                        )
                    walk = parents.get(walk)
                parent_id = target.id
            old = agency.parent_id
            agency.parent_id = parent_id
            await self._changed(
                session,
                actor,
                "agency.move",
                agency.code,
                {"from": old, "to": parent.upper() if parent else None},
            )
            return agency_view(agency, parent.strip().upper() if parent else None)

    async def change_agency(
        self, code: str, changes: Mapping[str, str], *, actor: str
    ) -> dict[str, Any]:
        """Change an agency's names or kind (`changes`: name_en, name_ar, kind); the
        audit event records each changed field before and after."""
        async with transaction(self._sessions) as session:
            agency = await self._agency(session, code, lock=True)
            wanted: dict[str, str] = {}
            for name, value in changes.items():
                if name == "kind":
                    wanted[name] = parse_kind(value).value
                elif name in ("name_en", "name_ar"):
                    label = "English name" if name == "name_en" else "Arabic name"
                    wanted[name] = clean_name(value, label)
                else:
                    raise DirectoryError(f"agency field {name!r} cannot be changed")
            diff = {
                name: {"from": getattr(agency, name), "to": value}
                for name, value in wanted.items()
                if getattr(agency, name) != value
            }
            for name, change in diff.items():
                setattr(agency, name, change["to"])
            if diff:
                await self._changed(session, actor, "agency.change", agency.code, diff)
            codes = await self._codes_by_id(session)
            return agency_view(agency, codes.get(agency.parent_id) if agency.parent_id else None)

    async def set_agency_status(
        self, code: str, status: AgencyStatus, *, actor: str
    ) -> dict[str, Any]:
        """Retire (suspend) or reactivate an agency: a suspended agency takes no new
        employees. Refuses a change to the status it already has."""
        async with transaction(self._sessions) as session:
            agency = await self._agency(session, code, lock=True)
            if agency.status == status.value:
                raise DirectoryConflict(f"agency {agency.code} is already {status.value}")
            old, agency.status = agency.status, status.value
            action = "agency.retire" if status is AgencyStatus.SUSPENDED else "agency.reactivate"
            await self._changed(
                session, actor, action, agency.code, {"status": {"from": old, "to": status.value}}
            )
            codes = await self._codes_by_id(session)
            return agency_view(agency, codes.get(agency.parent_id) if agency.parent_id else None)

    async def trust_ca(
        self, code: str, *, fingerprint: str, subject: str, pem: str, actor: str
    ) -> dict[str, Any]:
        async with transaction(self._sessions) as session:
            agency = await self._agency(session, code)
            exists = await session.scalar(
                select(AgencyCa.id).where(
                    AgencyCa.agency_id == agency.id, AgencyCa.fingerprint == fingerprint
                )
            )
            if exists is not None:
                raise DirectoryConflict(f"agency {agency.code} already trusts CA {fingerprint}")
            session.add(
                AgencyCa(
                    agency_id=agency.id,
                    fingerprint=fingerprint,
                    subject=subject,
                    pem=pem,
                    created_at=utcnow(),
                )
            )
            await session.flush()
            await self._changed(
                session,
                actor,
                "agency.trust-ca",
                agency.code,
                {"fingerprint": fingerprint, "subject": subject},
            )
            return {"agency": agency.code, "fingerprint": fingerprint, "subject": subject}


def _subtree_tree(snapshot: DirectorySnapshot, root: str) -> dict[str, Any]:
    agency = snapshot.agencies[root]
    return {
        "code": root,
        "name_en": agency.name_en,
        "kind": agency.kind.value,
        "children": [_subtree_tree(snapshot, c) for c in snapshot.children.get(root, ())],
    }

"""Employees' signing identities (OpenPGP keys, X.509 certificates) and what verifying needs.

Owns: registering an identity (one owner per fingerprint), revoking one, and
`signing_material`: an employee's identities with the CAs of their agency chain.
Must not: parse key material (keys/identities.py does; this stores results).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from gateway.store.db import transaction, utcnow
from gateway.store.directory.base import DirectoryPart
from gateway.store.directory.values import (
    DirectoryConflict,
    DirectoryNotFound,
    SigningMaterial,
    material_bytes,
)
from gateway.store.models import Agency, AgencyCa, SigningIdentity


class IdentityRegistry(DirectoryPart):
    """Signing identity operations; each change is one audited transaction."""

    async def signing_material(self, address: str) -> SigningMaterial:
        """The employee's registered identities and the CAs their agency chain trusts."""
        async with self._sessions() as session:
            employee = await self._employee(session, address)
            rows = (
                await session.execute(
                    select(
                        SigningIdentity.kind, SigningIdentity.fingerprint, SigningIdentity.material
                    ).where(SigningIdentity.employee_id == employee.id)
                )
            ).all()
            parents = {
                row[0]: row[1] for row in await session.execute(select(Agency.id, Agency.parent_id))
            }
            chain: list[int] = []
            walk: int | None = employee.agency_id
            while walk is not None and walk not in chain:
                chain.append(walk)
                walk = parents.get(walk)
            cas = (
                await session.scalars(select(AgencyCa.pem).where(AgencyCa.agency_id.in_(chain)))
            ).all()
        return SigningMaterial(
            openpgp_certs=tuple(material_bytes(m) for kind, _f, m in rows if kind == "openpgp"),
            openpgp_fingerprints=frozenset(f for kind, f, _m in rows if kind == "openpgp"),
            x509_certs=tuple(material_bytes(m) for kind, _f, m in rows if kind == "x509"),
            x509_fingerprints=frozenset(f for kind, f, _m in rows if kind == "x509"),
            ca_pems=tuple(p.encode("ascii") for p in cas),
        )

    async def employee_identity_facts(self, address: str) -> tuple[str, str]:
        """(normalized address, employee code) for checking a key before import."""
        async with self._sessions() as session:
            employee = await self._employee(session, address)
            return employee.address, employee.code

    async def add_identity(
        self, address: str, *, kind: str, fingerprint: str, material: str, actor: str
    ) -> dict[str, Any]:
        async with transaction(self._sessions) as session:
            employee = await self._employee(session, address)
            owner = await session.scalar(
                select(SigningIdentity.employee_id).where(
                    SigningIdentity.fingerprint == fingerprint
                )
            )
            if owner is not None:
                if owner == employee.id:
                    raise DirectoryConflict(f"{kind} identity {fingerprint} is already registered")
                raise DirectoryConflict(
                    f"{kind} identity {fingerprint} is registered to another employee"
                )
            session.add(
                SigningIdentity(
                    employee_id=employee.id,
                    kind=kind,
                    fingerprint=fingerprint,
                    material=material,
                    created_at=utcnow(),
                )
            )
            await session.flush()
            await self._changed(
                session,
                actor,
                "employee.import-key",
                employee.address,
                {"kind": kind, "fingerprint": fingerprint},
            )
            return {"address": employee.address, "kind": kind, "fingerprint": fingerprint}

    async def remove_identity(
        self, address: str, fingerprint: str, *, actor: str
    ) -> dict[str, Any]:
        """Revoke a registered signing identity: signatures by it are no longer accepted
        on new submissions. The audit event records its kind and fingerprint."""
        wanted = fingerprint.strip().upper().replace(":", "").replace(" ", "")
        async with transaction(self._sessions) as session:
            employee = await self._employee(session, address)
            identity = await session.scalar(
                select(SigningIdentity).where(
                    SigningIdentity.employee_id == employee.id,
                    SigningIdentity.fingerprint == wanted,
                )
            )
            if identity is None:
                raise DirectoryNotFound(
                    f"no signing identity {wanted} registered for {employee.address}"
                )
            kind = identity.kind
            await session.delete(identity)
            await session.flush()
            await self._changed(
                session,
                actor,
                "employee.revoke-key",
                employee.address,
                {"kind": kind, "fingerprint": wanted},
            )
            return {"address": employee.address, "kind": kind, "fingerprint": wanted}

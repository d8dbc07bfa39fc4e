"""The agency directory in the database: agencies, employees, identities, agency CAs.

Owns: every change to directory rows, each in one transaction together with its
audit event and a bump of `directory_version`; gap-free employee serials; the
snapshot that the policy engine decides over. Must not: hash passwords or parse
key files (keys/ does that; this module stores results) or print anything.
Every refusal is a `DirectoryError` whose message is safe to show a user.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, bindparam, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.store import audit
from gateway.store.db import transaction, utcnow
from gateway.store.models import Agency, AgencyCa, Employee, Meta, SigningIdentity
from policies.codes import CodeError, EmployeeCode, confusable_key, validate_agency_code
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
ADDRESS_RE = re.compile(r"^[a-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}@(?:[a-z0-9-]{1,63}\.)+[a-z]{2,63}$")
DOMAIN_RE = re.compile(r"^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
ROLE_RE = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")


class DirectoryError(Exception):
    """A refused directory change or a failed lookup; the message is user-facing."""


class _DryRunDone(Exception):
    """Raised inside a dry-run import to roll its transaction back."""

    def __init__(self, result: dict[str, Any]) -> None:
        super().__init__("dry run")
        self.result = result


def normalize_address(address: str) -> str:
    value = address.strip().lower()
    if not ADDRESS_RE.fullmatch(value) or ".." in value:
        raise DirectoryError(f"invalid mail address {address!r}")
    return value


def normalize_domain(domain: str) -> str:
    value = domain.strip().lower().rstrip(".")
    if not DOMAIN_RE.fullmatch(value):
        raise DirectoryError(f"invalid mail domain {domain!r}")
    return value


def parse_kind(kind: str) -> AgencyKind:
    try:
        return AgencyKind(kind.strip().lower())
    except ValueError:
        allowed = ", ".join(k.value for k in AgencyKind)
        raise DirectoryError(f"unknown agency kind {kind!r} (expected one of: {allowed})") from None


def parse_clearance(text: str) -> Clearance:
    try:
        return Clearance.parse(text)
    except ValueError as exc:
        raise DirectoryError(str(exc)) from None


def normalize_role(role: str) -> str:
    value = role.strip().lower()
    if not ROLE_RE.fullmatch(value):
        raise DirectoryError(
            f"invalid role {role!r}: lower-case letters, digits, '-' or '_', starting with a letter"
        )
    return value


def _name(value: str, what: str) -> str:
    text = " ".join(value.split())
    if not text:
        raise DirectoryError(f"{what} must not be empty")
    if len(text) > 300:
        raise DirectoryError(f"{what} is longer than 300 characters")
    return text


@dataclass(frozen=True)
class AgencyInput:
    code: str
    name_en: str
    name_ar: str
    kind: str
    domain: str
    parent: str | None = None


@dataclass(frozen=True)
class EmployeeInput:
    address: str
    agency: str
    name_en: str
    name_ar: str = ""
    role: str = "staff"
    clearance: str = "internal"
    password_hash: str | None = None


def agency_view(agency: Agency, parent_code: str | None) -> dict[str, Any]:
    return {
        "code": agency.code,
        "name_en": agency.name_en,
        "name_ar": agency.name_ar,
        "kind": agency.kind,
        "domain": agency.domain,
        "parent": parent_code,
        "status": agency.status,
        "employees_issued": agency.next_employee_serial - 1,
    }


def employee_view(employee: Employee, agency_code: str) -> dict[str, Any]:
    return {
        "address": employee.address,
        "code": employee.code,
        "agency": agency_code,
        "name_en": employee.name_en,
        "name_ar": employee.name_ar,
        "role": employee.role,
        "clearance": Clearance(employee.clearance).label,
        "status": employee.status,
        "has_password": employee.password_hash is not None,
    }


async def _bump_version(session: AsyncSession) -> None:
    result = await session.execute(
        update(Meta).where(Meta.key == DIRECTORY_VERSION).values(value=Meta.value + 1)
    )
    if getattr(result, "rowcount", 0) == 0:
        session.add(Meta(key=DIRECTORY_VERSION, value=1))
        await session.flush()


async def directory_version(session: AsyncSession) -> int:
    value = await session.scalar(select(Meta.value).where(Meta.key == DIRECTORY_VERSION))
    return int(value or 0)


class Directory:
    """Directory operations; each public coroutine is one audited transaction.

    `actor` names who made the change (e.g. "cli:root"), recorded in the audit trail.
    """

    def __init__(self, sessions: async_sessionmaker[AsyncSession], audit_key: bytes) -> None:
        self._sessions = sessions
        self._audit_key = audit_key

    # ---- lookups -------------------------------------------------------------

    @staticmethod
    async def _agency(session: AsyncSession, code: str, *, lock: bool = False) -> Agency:
        stmt = select(Agency).where(Agency.code == code.strip().upper())
        if lock:
            stmt = stmt.with_for_update()
        agency = await session.scalar(stmt)
        if agency is None:
            raise DirectoryError(f"unknown agency {code.strip().upper()!r}")
        return agency

    @staticmethod
    async def _employee(session: AsyncSession, address: str) -> Employee:
        employee = await session.scalar(
            select(Employee).where(Employee.address == address.strip().lower())
        )
        if employee is None:
            raise DirectoryError(f"unknown employee {address.strip().lower()!r}")
        return employee

    @staticmethod
    async def _codes_by_id(session: AsyncSession) -> dict[int, str]:
        return {row[0]: row[1] for row in await session.execute(select(Agency.id, Agency.code))}

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
            openpgp_certs=tuple(_material_bytes(m) for kind, _f, m in rows if kind == "openpgp"),
            openpgp_fingerprints=frozenset(f for kind, f, _m in rows if kind == "openpgp"),
            x509_certs=tuple(_material_bytes(m) for kind, _f, m in rows if kind == "x509"),
            x509_fingerprints=frozenset(f for kind, f, _m in rows if kind == "x509"),
            ca_pems=tuple(p.encode("ascii") for p in cas),
        )

    async def snapshot(self) -> DirectorySnapshot:
        """Read the whole directory into an immutable snapshot (one consistent read)."""
        async with self._sessions() as session:
            return await load_snapshot(session)

    async def version(self) -> int:
        async with self._sessions() as session:
            return await directory_version(session)

    # ---- changes -------------------------------------------------------------

    async def _changed(
        self, session: AsyncSession, actor: str, action: str, target: str, details: Any
    ) -> None:
        """Every directory change: its audit event and a `directory_version` bump,
        in the caller's transaction (so they commit or roll back with the change)."""
        await audit.append(
            session, self._audit_key, actor=actor, action=action, target=target, details=details
        )
        await _bump_version(session)

    async def _validate_agency(self, session: AsyncSession, data: AgencyInput) -> Agency:
        parent_id: int | None = None
        if data.parent:
            parent_id = (await self._agency(session, data.parent)).id
        code = _agency_code(data.code)
        existing = await session.scalar(
            select(Agency.code).where(
                (Agency.code == code) | (Agency.code_key == confusable_key(code))
            )
        )
        _refuse_clash(code, existing)
        return _new_agency(data, parent_id)

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
            raise DirectoryError(f"agency {agency.code} already exists") from None
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
        name_en = _name(data.name_en, "English name")
        name_ar = _name(data.name_ar or data.name_en, "Arabic name")
        exists = await session.scalar(select(Employee.id).where(Employee.address == address))
        if exists is not None:
            raise DirectoryError(f"employee {address} already exists")
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
            raise DirectoryError(f"employee {address} already exists") from None
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
                raise DirectoryError(f"employee {employee.address} is already {status.value}")
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
                    raise DirectoryError(f"{kind} identity {fingerprint} is already registered")
                raise DirectoryError(
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
                raise DirectoryError(f"agency {agency.code} already trusts CA {fingerprint}")
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

    async def import_rows(
        self,
        agencies: Sequence[AgencyInput],
        employees: Sequence[EmployeeInput],
        *,
        actor: str,
        dry_run: bool = False,
        progress: Any = None,
    ) -> dict[str, Any]:
        """Bulk onboarding: all rows or none, in one transaction with one audit event.

        `agencies` must be ordered parents first (directory_import sorts them).
        Raises DirectoryError on the first refused row; callers validate rows first
        (`directory_import`) so that users get every bad row in one report.
        """
        try:
            return await self._import_rows(
                agencies, employees, actor=actor, dry_run=dry_run, progress=progress
            )
        except _DryRunDone as done:
            return done.result

    async def _import_rows(
        self,
        agencies: Sequence[AgencyInput],
        employees: Sequence[EmployeeInput],
        *,
        actor: str,
        dry_run: bool,
        progress: Any,
    ) -> dict[str, Any]:
        async with transaction(self._sessions) as session:
            # One read of the existing agencies; everything else is checked in memory
            # (the unique constraints still guard against concurrent writers).
            known: dict[str, tuple[int, int]] = {}
            taken: dict[str, str] = {}
            for row in await session.execute(
                select(Agency.id, Agency.code, Agency.code_key, Agency.next_employee_serial)
            ):
                known[row[1]] = (row[0], row[3])
                taken[row[2]] = row[1]
            wanted: dict[str, int] = {}
            for person in employees:
                code = person.agency.strip().upper()
                wanted[code] = wanted.get(code, 0) + 1
            # New agencies, parents first, one flush per tree level (ids for children).
            depth: dict[str, int] = {}
            levels: dict[int, list[tuple[AgencyInput, str]]] = {}
            for item in agencies:
                code = _agency_code(item.code)
                _refuse_clash(code, taken.get(confusable_key(code)))
                taken[confusable_key(code)] = code
                parent = (item.parent or "").strip().upper() or None
                if parent is not None and parent not in known and parent not in depth:
                    raise DirectoryError(f"agency {code}: unknown parent {parent}")
                depth[code] = depth[parent] + 1 if parent in depth else 0
                levels.setdefault(depth[code], []).append((item, code))
            for level in sorted(levels):
                rows = [
                    _new_agency(
                        item,
                        known[item.parent.strip().upper()][0] if item.parent else None,
                        wanted.get(code, 0) + 1,
                    )
                    for item, code in levels[level]
                ]
                session.add_all(rows)
                await session.flush()
                for agency in rows:
                    known[agency.code] = (agency.id, 1)
                if progress is not None:
                    progress(len(rows))
            counters = {code: nxt for code, (_, nxt) in known.items()}
            issued: list[dict[str, str]] = []
            rows_out: list[dict[str, Any]] = []
            now = utcnow()
            for person in employees:
                agency_code = person.agency.strip().upper()
                if agency_code not in known:
                    raise DirectoryError(f"employee {person.address}: unknown agency {agency_code}")
                serial = counters[agency_code]
                counters[agency_code] = serial + 1
                code = str(EmployeeCode(agency_code, serial))
                rows_out.append(
                    {
                        "address": normalize_address(person.address),
                        "agency_id": known[agency_code][0],
                        "name_en": _name(person.name_en, "English name"),
                        "name_ar": _name(person.name_ar or person.name_en, "Arabic name"),
                        "role": normalize_role(person.role),
                        "clearance": int(parse_clearance(person.clearance)),
                        "status": EmployeeStatus.ACTIVE.value,
                        "serial": serial,
                        "code": code,
                        "password_hash": person.password_hash,
                        "encryption_key": None,
                        "created_at": now,
                    }
                )
                issued.append({"address": rows_out[-1]["address"], "code": code})
            for start in range(0, len(rows_out), 1000):
                chunk = rows_out[start : start + 1000]
                try:
                    await session.execute(insert(Employee), chunk)
                except IntegrityError:
                    raise DirectoryError(
                        "an employee address or code already exists (changed concurrently?)"
                    ) from None
                if progress is not None:
                    progress(len(chunk))
            # Existing agencies that got employees: advance their counters in one go.
            table = Agency.__table__
            assert isinstance(table, Table)
            bumps = [
                {"b_code": code, "b_next": counters[code]}
                for code in wanted
                if code in known and counters[code] != known[code][1] and code not in depth
            ]
            if bumps:
                await session.execute(
                    update(table)
                    .where(table.c.code == bindparam("b_code"))
                    .values(next_employee_serial=bindparam("b_next")),
                    bumps,
                )
            summary = {"agencies": len(agencies), "employees": len(employees)}
            await audit.append(
                session,
                self._audit_key,
                actor=actor,
                action="directory.import",
                target="",
                outcome="dry-run" if dry_run else "ok",
                details=summary,
            )
            await _bump_version(session)
            result = {**summary, "dry_run": dry_run, "issued": issued}
            if dry_run:
                raise _DryRunDone(result)  # rolls the whole transaction back
            return result


@dataclass(frozen=True)
class SigningMaterial:
    """What verifying an employee's signature needs (docs/CONTRACT.md §4)."""

    openpgp_certs: tuple[bytes, ...]  # registered public keys as imported
    openpgp_fingerprints: frozenset[str]  # primary key fingerprints, upper hex
    x509_certs: tuple[bytes, ...]  # registered certificates as imported (PEM or DER)
    x509_fingerprints: frozenset[str]  # SHA-256 of the certificate DER, upper hex
    ca_pems: tuple[bytes, ...]  # agency CAs of the employee's agency and its parents


def _material_bytes(material: str) -> bytes:
    if material.startswith("base64:"):
        return base64.b64decode(material[len("base64:") :])
    return material.encode("ascii")


def _agency_code(text: str) -> str:
    try:
        return validate_agency_code(text.strip().upper())
    except CodeError as exc:
        raise DirectoryError(str(exc)) from None


def _refuse_clash(code: str, existing: str | None) -> None:
    """Refuse a code that exists, or that differs from an existing one only in hyphens."""
    if existing == code:
        raise DirectoryError(f"agency {code} already exists")
    if existing is not None:
        raise DirectoryError(
            f"agency code {code} is too close to existing {existing}"
            " (codes may not differ only in hyphens)"
        )


def _new_agency(data: AgencyInput, parent_id: int | None, next_serial: int = 1) -> Agency:
    """A checked, unsaved agency row (uniqueness is the caller's check)."""
    code = _agency_code(data.code)
    return Agency(
        code=code,
        code_key=confusable_key(code),
        name_en=_name(data.name_en, "English name"),
        name_ar=_name(data.name_ar or data.name_en, "Arabic name"),
        kind=parse_kind(data.kind).value,
        domain=normalize_domain(data.domain),
        parent_id=parent_id,
        status=AgencyStatus.ACTIVE.value,
        next_employee_serial=next_serial,
        created_at=utcnow(),
    )


def _subtree_tree(snapshot: DirectorySnapshot, root: str) -> dict[str, Any]:
    agency = snapshot.agencies[root]
    return {
        "code": root,
        "name_en": agency.name_en,
        "kind": agency.kind.value,
        "children": [_subtree_tree(snapshot, c) for c in snapshot.children.get(root, ())],
    }


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

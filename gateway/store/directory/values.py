"""The directory's values: input records, checked fields, user-facing views.

Owns: normalising and refusing addresses, domains, roles, kinds, clearances and
names (`DirectoryError`), the dict views the CLI prints, `SigningMaterial`.
Must not: touch the database session beyond building unsaved rows.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from typing import Any

from gateway.store.db import utcnow
from gateway.store.models import Agency, Employee
from policies.codes import CodeError, confusable_key, validate_agency_code
from policies.directory import AgencyKind, AgencyStatus, Clearance

ADDRESS_RE = re.compile(r"^[a-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}@(?:[a-z0-9-]{1,63}\.)+[a-z]{2,63}$")
DOMAIN_RE = re.compile(r"^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
ROLE_RE = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")


class DirectoryError(Exception):
    """A refused directory change or a failed lookup; the message is user-facing."""


class DirectoryNotFound(DirectoryError):
    """The named agency or employee does not exist."""


class DirectoryConflict(DirectoryError):
    """The change clashes with what exists (a duplicate code, address or fingerprint)."""


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


def clean_name(value: str, what: str) -> str:
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


@dataclass(frozen=True)
class SigningMaterial:
    """What verifying an employee's signature needs (docs/CONTRACT.md §4)."""

    openpgp_certs: tuple[bytes, ...]  # registered public keys as imported
    openpgp_fingerprints: frozenset[str]  # primary key fingerprints, upper hex
    x509_certs: tuple[bytes, ...]  # registered certificates as imported (PEM or DER)
    x509_fingerprints: frozenset[str]  # SHA-256 of the certificate DER, upper hex
    ca_pems: tuple[bytes, ...]  # agency CAs of the employee's agency and its parents


def material_bytes(material: str) -> bytes:
    if material.startswith("base64:"):
        return base64.b64decode(material[len("base64:") :])
    return material.encode("ascii")


def checked_agency_code(text: str) -> str:
    try:
        return validate_agency_code(text.strip().upper())
    except CodeError as exc:
        raise DirectoryError(str(exc)) from None


def refuse_clash(code: str, existing: str | None) -> None:
    """Refuse a code that exists, or that differs from an existing one only in hyphens."""
    if existing == code:
        raise DirectoryConflict(f"agency {code} already exists")
    if existing is not None:
        raise DirectoryConflict(
            f"agency code {code} is too close to existing {existing}"
            " (codes may not differ only in hyphens)"
        )


def new_agency(data: AgencyInput, parent_id: int | None, next_serial: int = 1) -> Agency:
    """A checked, unsaved agency row (uniqueness is the caller's check)."""
    code = checked_agency_code(data.code)
    return Agency(
        code=code,
        code_key=confusable_key(code),
        name_en=clean_name(data.name_en, "English name"),
        name_ar=clean_name(data.name_ar or data.name_en, "Arabic name"),
        kind=parse_kind(data.kind).value,
        domain=normalize_domain(data.domain),
        parent_id=parent_id,
        status=AgencyStatus.ACTIVE.value,
        next_employee_serial=next_serial,
        created_at=utcnow(),
    )

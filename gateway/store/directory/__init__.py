"""The agency directory in the database: agencies, employees, identities, agency CAs.

Owns: `Directory`, one facade over the parts (agencies, employees, identities,
bulk import) that share the sessions, the audit key and the version bump; every
change is one transaction with its audit event. Must not: hash passwords, parse
key files or print anything. Every refusal is a `DirectoryError` safe to show.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.store.directory.agencies import AgencyRegistry
from gateway.store.directory.base import (
    DIRECTORY_VERSION,
    DirectoryPart,
    bump_version,
    directory_version,
    load_snapshot,
)
from gateway.store.directory.employees import EmployeeRegistry
from gateway.store.directory.identities import IdentityRegistry
from gateway.store.directory.importer import DirectoryImporter
from gateway.store.directory.values import (
    ADDRESS_RE,
    DOMAIN_RE,
    ROLE_RE,
    AgencyInput,
    DirectoryConflict,
    DirectoryError,
    DirectoryNotFound,
    EmployeeInput,
    SigningMaterial,
    agency_view,
    employee_view,
    normalize_address,
    normalize_domain,
    normalize_role,
    parse_clearance,
    parse_kind,
)

__all__ = [
    "ADDRESS_RE",
    "DIRECTORY_VERSION",
    "DOMAIN_RE",
    "ROLE_RE",
    "AgencyInput",
    "AgencyRegistry",
    "Directory",
    "DirectoryConflict",
    "DirectoryError",
    "DirectoryImporter",
    "DirectoryNotFound",
    "EmployeeInput",
    "EmployeeRegistry",
    "IdentityRegistry",
    "SigningMaterial",
    "agency_view",
    "bump_version",
    "directory_version",
    "employee_view",
    "load_snapshot",
    "normalize_address",
    "normalize_domain",
    "normalize_role",
    "parse_clearance",
    "parse_kind",
]


class Directory(DirectoryPart):
    """Directory operations; each public coroutine is one audited transaction.

    `actor` names who made the change (e.g. "cli:root"), recorded in the audit
    trail. The work is done by the parts; this class only hands each call on.
    """

    def __init__(self, sessions: async_sessionmaker[AsyncSession], audit_key: bytes) -> None:
        super().__init__(sessions, audit_key)
        self.agencies = AgencyRegistry(sessions, audit_key)
        self.employees = EmployeeRegistry(sessions, audit_key)
        self.identities = IdentityRegistry(sessions, audit_key)
        self.importer = DirectoryImporter(sessions, audit_key)
        # agencies
        self.list_agencies = self.agencies.list_agencies
        self.show_agency = self.agencies.show_agency
        self.add_agency = self.agencies.add_agency
        self.set_parent = self.agencies.set_parent
        self.change_agency = self.agencies.change_agency
        self.set_agency_status = self.agencies.set_agency_status
        self.trust_ca = self.agencies.trust_ca
        # employees
        self.list_employees = self.employees.list_employees
        self.show_employee = self.employees.show_employee
        self.password_hash = self.employees.password_hash
        self.active_employee_id = self.employees.active_employee_id
        self.add_employee = self.employees.add_employee
        self.set_status = self.employees.set_status
        self.change_employee = self.employees.change_employee
        self.set_password = self.employees.set_password
        # identities
        self.employee_identity_facts = self.identities.employee_identity_facts
        self.add_identity = self.identities.add_identity
        self.remove_identity = self.identities.remove_identity
        self.signing_material = self.identities.signing_material
        # bulk import
        self.import_rows = self.importer.import_rows

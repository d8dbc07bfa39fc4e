"""Helpers for the policy engine tests: the demo directory and policy builders.

The demo directory mirrors the agencies the shipped config/policies.yaml names
(CAB, MOH, MOH-PLN, MOF, MOF-BUD, GOV-BSR) and the federated peer "region".
"""

from __future__ import annotations

import textwrap
from pathlib import Path

from admin import demo_data
from policies.codes import EmployeeCode
from policies.directory import (
    AgencyKind,
    AgencyRecord,
    Clearance,
    DirectorySnapshot,
    EmployeeRecord,
    EmployeeStatus,
)
from policies.engine import Policy
from policies.loader import load_policy

REPO = Path(__file__).resolve().parents[1]

POLICY_FILE = REPO / "config" / "policies.yaml"
CASES_FILE = REPO / "config" / "policies.cases.yaml"
FEDERATION = {"region": frozenset({"region.gov.example"})}

# The demo government of `barid demo` (admin/demo_data.py), as engine values.
DEMO_AGENCIES = tuple(
    (a.code, a.name_en, a.name_ar, AgencyKind(a.kind), a.domain, a.parent)
    for a in demo_data.AGENCIES
)
DEMO_EMPLOYEES = tuple(
    (address, agency, role, Clearance.parse(clearance), EmployeeStatus(status))
    for address, agency, _en, _ar, role, clearance, status, _smime in demo_data.EMPLOYEES
)


def build_demo_snapshot(
    extra_agencies: tuple[AgencyRecord, ...] = (),
    extra_employees: tuple[EmployeeRecord, ...] = (),
    drop_agencies: frozenset[str] = frozenset(),
) -> DirectorySnapshot:
    """The demo directory, optionally changed (for rebind tests)."""
    agencies = [
        AgencyRecord(code, en, ar, kind, domain, parent)
        for code, en, ar, kind, domain, parent in DEMO_AGENCIES
        if code not in drop_agencies
    ]
    employees = []
    serials: dict[str, int] = {}
    for address, agency, role, clearance, status in DEMO_EMPLOYEES:
        if agency in drop_agencies:
            continue
        serials[agency] = serials.get(agency, 0) + 1
        name = address.split("@")[0].replace(".", " ").title()
        employees.append(
            EmployeeRecord(
                address=address,
                agency=agency,
                name_en=name,
                name_ar=name,
                role=role,
                clearance=clearance,
                status=status,
                code=str(EmployeeCode(agency, serials[agency])),
            )
        )
    return DirectorySnapshot.build([*agencies, *extra_agencies], [*employees, *extra_employees])


def policy_text(rules: str, default: str | None = None, extra: str = "") -> str:
    """A policy file around a YAML block of rules (given at any indentation)."""
    body = textwrap.indent(textwrap.dedent(rules).strip("\n"), "  ")
    text = f"version: 1\n{extra}"
    if default is not None:
        text += f"default: {default}\n"
    return text + "rules:\n" + (body + "\n" if body.strip() else "  []\n")


def make_policy(
    rules: str,
    default: str | None = None,
    snapshot: DirectorySnapshot | None = None,
    extra: str = "",
) -> Policy:
    return load_policy(
        policy_text(rules, default, extra), snapshot or build_demo_snapshot(), FEDERATION
    )

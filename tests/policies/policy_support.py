"""Helpers for the policy engine tests: the demo directory and policy builders.

The demo directory mirrors the agencies the shipped config/policies.yaml names
(CAB, MOH, MOH-PLN, MOF, MOF-BUD, GOV-BSR) and the federated peer "region".
"""

from __future__ import annotations

import textwrap
from pathlib import Path

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

REPO = Path(__file__).resolve().parents[2]

POLICY_FILE = REPO / "config" / "policies.yaml"
CASES_FILE = REPO / "config" / "policies.cases.yaml"
FEDERATION = {"region": frozenset({"region.gov.example"})}

DEMO_AGENCIES = (
    # code, English name, Arabic name, kind, domain, parent
    (
        "CAB",
        "Cabinet Secretariat",
        "الأمانة العامة لمجلس الوزراء",
        AgencyKind.ENTITY,
        "cab.gov.example",
        None,
    ),
    ("MOH", "Ministry of Health", "وزارة الصحة", AgencyKind.MINISTRY, "moh.gov.example", None),
    (
        "MOH-PLN",
        "Planning Directorate",
        "دائرة التخطيط",
        AgencyKind.DIRECTORATE,
        "moh.gov.example",
        "MOH",
    ),
    ("MOF", "Ministry of Finance", "وزارة المالية", AgencyKind.MINISTRY, "mof.gov.example", None),
    (
        "MOF-BUD",
        "Budget Directorate",
        "دائرة الموازنة",
        AgencyKind.DIRECTORATE,
        "mof.gov.example",
        "MOF",
    ),
    (
        "GOV-BSR",
        "Basra Governorate",
        "محافظة البصرة",
        AgencyKind.GOVERNORATE,
        "gov-bsr.gov.example",
        None,
    ),
)

DEMO_EMPLOYEES = (
    # address, agency, role, clearance, status
    ("director@cab.gov.example", "CAB", "director", Clearance.SECRET, EmployeeStatus.ACTIVE),
    (
        "registrar@cab.gov.example",
        "CAB",
        "registrar",
        Clearance.CONFIDENTIAL,
        EmployeeStatus.ACTIVE,
    ),
    ("clerk@cab.gov.example", "CAB", "clerk", Clearance.INTERNAL, EmployeeStatus.ACTIVE),
    ("minister@moh.gov.example", "MOH", "minister", Clearance.SECRET, EmployeeStatus.ACTIVE),
    (
        "registrar@moh.gov.example",
        "MOH",
        "registrar",
        Clearance.CONFIDENTIAL,
        EmployeeStatus.ACTIVE,
    ),
    ("clerk@moh.gov.example", "MOH", "clerk", Clearance.INTERNAL, EmployeeStatus.ACTIVE),
    ("former@moh.gov.example", "MOH", "clerk", Clearance.INTERNAL, EmployeeStatus.LEFT),
    (
        "planning.director@moh.gov.example",
        "MOH-PLN",
        "director",
        Clearance.CONFIDENTIAL,
        EmployeeStatus.ACTIVE,
    ),
    ("planning.clerk@moh.gov.example", "MOH-PLN", "clerk", Clearance.PUBLIC, EmployeeStatus.ACTIVE),
    ("minister@mof.gov.example", "MOF", "minister", Clearance.SECRET, EmployeeStatus.ACTIVE),
    (
        "registrar@mof.gov.example",
        "MOF",
        "registrar",
        Clearance.CONFIDENTIAL,
        EmployeeStatus.ACTIVE,
    ),
    ("clerk@mof.gov.example", "MOF", "clerk", Clearance.INTERNAL, EmployeeStatus.ACTIVE),
    (
        "budget.director@mof.gov.example",
        "MOF-BUD",
        "director",
        Clearance.CONFIDENTIAL,
        EmployeeStatus.ACTIVE,
    ),
    (
        "governor@gov-bsr.gov.example",
        "GOV-BSR",
        "director",
        Clearance.SECRET,
        EmployeeStatus.ACTIVE,
    ),
    (
        "registrar@gov-bsr.gov.example",
        "GOV-BSR",
        "registrar",
        Clearance.INTERNAL,
        EmployeeStatus.ACTIVE,
    ),
    ("clerk@gov-bsr.gov.example", "GOV-BSR", "clerk", Clearance.PUBLIC, EmployeeStatus.ACTIVE),
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

"""Bulk onboarding from CSV: parse, check every row, order agencies parents first.

Owns: the CSV format and the line-numbered report of bad rows. Must not: write
anything; `Directory.import_rows` stores the checked rows in one transaction.

Format (UTF-8, header row required, columns in any order):
    type,code,name_en,name_ar,kind,domain,parent,address,agency,role,clearance
`type` is `agency` (code, name_en, name_ar, kind, domain, parent) or `employee`
(address, agency, name_en, name_ar, role, clearance). Unused cells stay empty.
Employees get no password; set one with `barid employee set-password`.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass, field

from gateway.store.directory import (
    AgencyInput,
    DirectoryError,
    EmployeeInput,
    normalize_address,
    normalize_domain,
    normalize_role,
    parse_clearance,
    parse_kind,
)
from policies.codes import CodeError, confusable_key, validate_agency_code
from policies.directory import DirectorySnapshot

COLUMNS = (
    "type", "code", "name_en", "name_ar", "kind", "domain", "parent",
    "address", "agency", "role", "clearance",
)  # fmt: skip
MAX_ROWS = 200_000


@dataclass
class ImportPlan:
    agencies: list[AgencyInput] = field(default_factory=list)  # parents first
    employees: list[EmployeeInput] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # "line N: reason"


def read_rows(data: bytes) -> tuple[list[tuple[int, dict[str, str]]], list[str]]:
    """Decode and split the CSV; returns (line number, row) pairs and format problems."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return [], [f"file is not UTF-8 (byte {exc.start})"]
    reader = csv.DictReader(io.StringIO(text, newline=""), strict=True)
    header = [h.strip().lower() for h in (reader.fieldnames or [])]
    if not header:
        return [], ["line 1: missing header row"]
    unknown = [h for h in header if h not in COLUMNS]
    if unknown or "type" not in header:
        expected = ",".join(COLUMNS)
        return [], [
            f"line 1: bad header (unknown: {', '.join(unknown) or '-'}; expected {expected})"
        ]
    reader.fieldnames = header
    rows: list[tuple[int, dict[str, str]]] = []
    try:
        for row in reader:
            if None in row:
                return rows, [f"line {reader.line_num}: more cells than header columns"]
            rows.append((reader.line_num, {k: (v or "").strip() for k, v in row.items()}))
            if len(rows) > MAX_ROWS:
                return rows, [f"more than {MAX_ROWS} rows; split the file"]
    except csv.Error as exc:
        return rows, [f"line {reader.line_num}: {exc}"]
    return rows, []


def plan_import(
    rows: Iterable[tuple[int, dict[str, str]]], existing: DirectorySnapshot
) -> ImportPlan:
    """Check every row against the existing directory and the file itself."""
    plan = ImportPlan()
    agency_rows: dict[str, tuple[int, AgencyInput]] = {}
    code_keys = {confusable_key(c): c for c in existing.agencies}
    domains = {c: a.domain for c, a in existing.agencies.items()}
    addresses: dict[str, int] = {}
    employee_rows: list[tuple[int, EmployeeInput]] = []

    for line, row in rows:
        kind = row.get("type", "").lower()
        try:
            if kind == "agency":
                code = validate_agency_code(row.get("code", "").upper())
                parse_kind(row.get("kind", ""))
                domain = normalize_domain(row.get("domain", ""))
                if not row.get("name_en"):
                    raise DirectoryError("name_en is empty")
                if code in existing.agencies or code in agency_rows:
                    raise DirectoryError(f"agency {code} already exists")
                clash = code_keys.get(confusable_key(code))
                if clash is not None:
                    raise DirectoryError(f"agency code {code} is too close to {clash}")
                code_keys[confusable_key(code)] = code
                domains[code] = domain
                agency_rows[code] = (
                    line,
                    AgencyInput(
                        code=code,
                        name_en=row["name_en"],
                        name_ar=row.get("name_ar", ""),
                        kind=row["kind"],
                        domain=domain,
                        parent=row.get("parent", "").upper() or None,
                    ),
                )
            elif kind == "employee":
                address = normalize_address(row.get("address", ""))
                if address in existing.employees or address in addresses:
                    first = addresses.get(address)
                    where = f" (also on line {first})" if first else ""
                    raise DirectoryError(f"employee {address} already exists{where}")
                addresses[address] = line
                parse_clearance(row.get("clearance") or "internal")
                normalize_role(row.get("role") or "staff")
                if not row.get("name_en"):
                    raise DirectoryError("name_en is empty")
                employee_rows.append(
                    (
                        line,
                        EmployeeInput(
                            address=address,
                            agency=row.get("agency", "").upper(),
                            name_en=row["name_en"],
                            name_ar=row.get("name_ar", ""),
                            role=row.get("role") or "staff",
                            clearance=row.get("clearance") or "internal",
                        ),
                    )
                )
            else:
                raise DirectoryError(f"type must be agency or employee, not {kind!r}")
        except (DirectoryError, CodeError) as exc:
            plan.problems.append(f"line {line}: {exc}")

    # Parents must exist (already, or in this file); no cycles among new agencies.
    for code, (line, item) in agency_rows.items():
        if item.parent and item.parent not in existing.agencies and item.parent not in agency_rows:
            plan.problems.append(f"line {line}: agency {code}: unknown parent {item.parent}")
    plan.agencies = _parents_first(agency_rows, existing, plan.problems)

    for line, person in employee_rows:
        if person.agency not in domains:
            plan.problems.append(
                f"line {line}: employee {person.address}: unknown agency {person.agency!r}"
            )
        elif person.address.rsplit("@", 1)[1] != domains[person.agency]:
            plan.problems.append(
                f"line {line}: employee {person.address}: not in agency {person.agency}'s"
                f" domain {domains[person.agency]}"
            )
        else:
            plan.employees.append(person)
    plan.problems.sort(
        key=lambda p: int(p.split(":")[0].split()[-1]) if p.startswith("line ") else 0
    )
    return plan


def _parents_first(
    rows: dict[str, tuple[int, AgencyInput]], existing: DirectorySnapshot, problems: list[str]
) -> list[AgencyInput]:
    ordered: list[AgencyInput] = []
    state: dict[str, int] = {}  # 1 = visiting, 2 = done
    for start in rows:
        stack = [start]
        path: list[str] = []
        while stack:
            code = stack[-1]
            if state.get(code) == 2:
                stack.pop()
                continue
            if state.get(code) == 1:
                state[code] = 2
                ordered.append(rows[code][1])
                stack.pop()
                path.pop()
                continue
            state[code] = 1
            path.append(code)
            parent = rows[code][1].parent
            if parent in rows and parent not in existing.agencies:
                if state.get(parent) == 1:
                    cycle = [*path[path.index(parent) :], parent]
                    problems.append(
                        f"line {rows[code][0]}: cycle in the agency tree: {' -> '.join(cycle)}"
                    )
                    return []
                if state.get(parent) != 2:
                    stack.append(parent)
    return ordered

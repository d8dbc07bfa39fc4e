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
    try:
        header = [h.strip().lower() for h in (reader.fieldnames or [])]
    except csv.Error as exc:  # the header row itself is malformed (e.g. an open quote)
        return [], [f"line 1: {exc}"]
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
    seen = _Seen(
        existing,
        code_keys={confusable_key(c): c for c in existing.agencies},
        domains={c: a.domain for c, a in existing.agencies.items()},
    )
    for line, row in rows:
        kind = row.get("type", "").lower()
        try:
            if kind == "agency":
                _check_agency(seen, line, row)
            elif kind == "employee":
                _check_employee(seen, line, row)
            else:
                raise DirectoryError(f"type must be agency or employee, not {kind!r}")
        except (DirectoryError, CodeError) as exc:
            plan.problems.append(f"line {line}: {exc}")

    # Parents must exist (already, or in this file); no cycles among new agencies.
    for code, (line, item) in seen.agency_rows.items():
        if (
            item.parent
            and item.parent not in existing.agencies
            and item.parent not in seen.agency_rows
        ):
            plan.problems.append(f"line {line}: agency {code}: unknown parent {item.parent}")
    plan.agencies = _parents_first(seen.agency_rows, existing, plan.problems)
    plan.employees = _in_their_domains(seen.employee_rows, seen.domains, plan.problems)
    plan.problems.sort(
        key=lambda p: int(p.split(":")[0].split()[-1]) if p.startswith("line ") else 0
    )
    return plan


@dataclass
class _Seen:
    """What the existing directory and the rows checked so far have claimed."""

    existing: DirectorySnapshot
    code_keys: dict[str, str]  # confusable key -> agency code
    domains: dict[str, str]  # agency code -> mail domain
    agency_rows: dict[str, tuple[int, AgencyInput]] = field(default_factory=dict)
    addresses: dict[str, int] = field(default_factory=dict)  # address -> line
    employee_rows: list[tuple[int, EmployeeInput]] = field(default_factory=list)


def _check_agency(seen: _Seen, line: int, row: dict[str, str]) -> None:
    code = validate_agency_code(row.get("code", "").upper())
    parse_kind(row.get("kind", ""))
    domain = normalize_domain(row.get("domain", ""))
    if not row.get("name_en"):
        raise DirectoryError("name_en is empty")
    if code in seen.existing.agencies or code in seen.agency_rows:
        raise DirectoryError(f"agency {code} already exists")
    clash = seen.code_keys.get(confusable_key(code))
    if clash is not None:
        raise DirectoryError(f"agency code {code} is too close to {clash}")
    seen.code_keys[confusable_key(code)] = code
    seen.domains[code] = domain
    seen.agency_rows[code] = (
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


def _check_employee(seen: _Seen, line: int, row: dict[str, str]) -> None:
    address = normalize_address(row.get("address", ""))
    if address in seen.existing.employees or address in seen.addresses:
        first = seen.addresses.get(address)
        where = f" (also on line {first})" if first else ""
        raise DirectoryError(f"employee {address} already exists{where}")
    seen.addresses[address] = line
    parse_clearance(row.get("clearance") or "internal")
    normalize_role(row.get("role") or "staff")
    if not row.get("name_en"):
        raise DirectoryError("name_en is empty")
    seen.employee_rows.append(
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


def _in_their_domains(
    employee_rows: list[tuple[int, EmployeeInput]], domains: dict[str, str], problems: list[str]
) -> list[EmployeeInput]:
    """The employees whose agency is known and whose address is in its domain."""
    placed: list[EmployeeInput] = []
    for line, person in employee_rows:
        if person.agency not in domains:
            problems.append(
                f"line {line}: employee {person.address}: unknown agency {person.agency!r}"
            )
        elif person.address.rsplit("@", 1)[1] != domains[person.agency]:
            problems.append(
                f"line {line}: employee {person.address}: not in agency {person.agency}'s"
                f" domain {domains[person.agency]}"
            )
        else:
            placed.append(person)
    return placed


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

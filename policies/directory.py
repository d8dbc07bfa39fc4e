"""The directory as plain, immutable values: agencies, employees, clearances.

Owns: the vocabulary shared by every layer (agency kinds, clearance order,
employee status) and `DirectorySnapshot`, the read-only view the policy engine
decides over. Must not: know about storage; the store builds snapshots.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType


class AgencyKind(enum.StrEnum):
    """Kinds of agency as written on the command line (docs/CONTRACT.md §3)."""

    MINISTRY = "ministry"
    ENTITY = "entity"
    GOVERNORATE = "governorate"
    DIRECTORATE = "directorate"
    BRANCH = "branch"
    REGION = "region"


class AgencyStatus(enum.StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"


class EmployeeStatus(enum.StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"
    LEFT = "left"


@enum.unique
class Clearance(enum.IntEnum):
    """Ordered: public < internal < confidential < secret (docs/CONTRACT.md §3)."""

    PUBLIC = 0
    INTERNAL = 1
    CONFIDENTIAL = 2
    SECRET = 3

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Clearance:
        """Parse a lower-case label; raises ValueError naming the allowed values."""
        try:
            return cls[text.strip().upper()]
        except KeyError:
            allowed = ", ".join(c.label for c in cls)
            raise ValueError(f"unknown clearance {text!r} (expected one of: {allowed})") from None


@dataclass(frozen=True, slots=True)
class AgencyRecord:
    code: str
    name_en: str
    name_ar: str
    kind: AgencyKind
    domain: str
    parent: str | None
    status: AgencyStatus = AgencyStatus.ACTIVE


@dataclass(frozen=True, slots=True)
class EmployeeRecord:
    address: str  # lower-case
    agency: str  # agency code
    name_en: str
    name_ar: str
    role: str
    clearance: Clearance
    status: EmployeeStatus
    code: str  # the employee code, e.g. MOH-000042-K


@dataclass(frozen=True, slots=True)
class DirectorySnapshot:
    """An immutable view of the directory, built once and swapped atomically.

    Invariants: every agency's parent is in `agencies` (or None); the tree has no
    cycles; `ancestors[code]` lists the agency's ancestors nearest first.
    """

    agencies: Mapping[str, AgencyRecord]
    employees: Mapping[str, EmployeeRecord]
    ancestors: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    children: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def build(
        cls, agencies: Iterable[AgencyRecord], employees: Iterable[EmployeeRecord]
    ) -> DirectorySnapshot:
        """Index the records; raises ValueError on an unknown parent or a cycle."""
        by_code = {a.code: a for a in agencies}
        ancestors: dict[str, tuple[str, ...]] = {}
        children: dict[str, list[str]] = {code: [] for code in by_code}
        for code, agency in by_code.items():
            if agency.parent is not None:
                if agency.parent not in by_code:
                    raise ValueError(f"agency {code}: unknown parent {agency.parent}")
                children[agency.parent].append(code)
        for code in by_code:
            chain: list[str] = []
            seen = {code}
            parent = by_code[code].parent
            while parent is not None:
                if parent in seen:
                    raise ValueError(f"agency {code}: cycle in the agency tree")
                seen.add(parent)
                chain.append(parent)
                parent = by_code[parent].parent
            ancestors[code] = tuple(chain)
        staff = {e.address.lower(): e for e in employees}
        return cls(
            agencies=MappingProxyType(by_code),
            employees=MappingProxyType(staff),
            ancestors=MappingProxyType(ancestors),
            children=MappingProxyType({k: tuple(sorted(v)) for k, v in children.items()}),
        )

    def employee(self, address: str) -> EmployeeRecord | None:
        return self.employees.get(address.lower())

    def in_subtree(self, agency: str, root: str) -> bool:
        """True when `agency` is `root` or one of its descendants."""
        return agency == root or root in self.ancestors.get(agency, ())

    def subtree(self, root: str) -> list[str]:
        """`root` and all its descendants, depth first, children sorted by code."""
        out: list[str] = []
        stack = [root]
        while stack:
            code = stack.pop()
            out.append(code)
            stack.extend(reversed(self.children.get(code, ())))
        return out

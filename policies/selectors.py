"""What a selector means over one directory snapshot: parties, agency sets, relations.

Owns: `Party` (a local employee or a federated remote address), `DirectoryIndex`
(snapshot views computed once) and the slow, explainable selector check used by
traces and the validator. Must not: order rules or decide (see engine).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from policies.directory import AgencyKind, DirectorySnapshot, EmployeeRecord
from policies.rules import Relation, Selector


@dataclass(frozen=True, slots=True)
class Party:
    """A sender or recipient: a directory employee, or a remote address of a peer."""

    address: str
    employee: EmployeeRecord | None = None
    peer: str | None = None

    @property
    def domain(self) -> str:
        return self.address.rpartition("@")[2]

    def describe(self) -> str:
        if self.employee is not None:
            e = self.employee
            return f"{self.address} ({e.agency}, {e.role}, {e.clearance.label})"
        return f"{self.address} (federated peer {self.peer})"


def compile_glob(pattern: str) -> re.Pattern[str]:
    """An address glob (*, ?, [...]) as a full-match regular expression."""
    return re.compile(fnmatch.translate(pattern.lower()), re.IGNORECASE)


def domain_of_glob(pattern: str) -> str | None:
    """For `*@literal.domain`, the domain (fast path); otherwise None."""
    local, _, domain = pattern.partition("@")
    if local == "*" and not any(ch in domain for ch in "*?["):
        return domain
    return None


class DirectoryIndex:
    """Views of a snapshot that selectors need, computed once per snapshot."""

    def __init__(
        self, snapshot: DirectorySnapshot, federation: Mapping[str, Collection[str]]
    ) -> None:
        self.snapshot = snapshot
        self.parent: Mapping[str, str | None] = {c: a.parent for c, a in snapshot.agencies.items()}
        self.ancestors: Mapping[str, frozenset[str]] = {
            code: frozenset(snapshot.ancestors.get(code, ())) for code in snapshot.agencies
        }
        self.all_agencies = frozenset(snapshot.agencies)
        self.root: Mapping[str, str] = {
            code: (snapshot.ancestors.get(code) or (code,))[-1] for code in snapshot.agencies
        }
        by_kind: dict[AgencyKind, set[str]] = {kind: set() for kind in AgencyKind}
        for code, agency in snapshot.agencies.items():
            by_kind[agency.kind].add(code)
        self.by_kind: Mapping[AgencyKind, frozenset[str]] = {
            k: frozenset(v) for k, v in by_kind.items()
        }
        self.roles = frozenset(e.role for e in snapshot.employees.values())
        self.local_domains = frozenset(a.domain.lower() for a in snapshot.agencies.values()) | {
            address.rpartition("@")[2] for address in snapshot.employees
        }
        self.federation: Mapping[str, frozenset[str]] = MappingProxyType(
            {peer: frozenset(d.lower() for d in domains) for peer, domains in federation.items()}
        )
        # Memo of agency_set (same selectors recur across rules and traces).
        self._agency_sets: dict[tuple[object, ...], frozenset[str]] = {}
        self.domain_peer: Mapping[str, str] = {
            domain: peer for peer, domains in self.federation.items() for domain in domains
        }

    def resolve(self, address: str) -> Party | None:
        """The party behind an address, or None when it is neither local nor federated."""
        address = address.strip().lower()
        employee = self.snapshot.employees.get(address)
        if employee is not None:
            return Party(address, employee, None)
        peer = self.domain_peer.get(address.rpartition("@")[2])
        if peer is not None and "@" in address:
            return Party(address, None, peer)
        return None

    def agency_set(self, selector: Selector) -> frozenset[str] | None:
        """Agencies allowed by the `agency` and `kind` keys; None when neither is given."""
        if not selector.agencies and not selector.kinds:
            return None
        key = (selector.agencies, selector.kinds)
        cached = self._agency_sets.get(key)
        if cached is None:
            cached = self._agency_sets[key] = self._compute_agency_set(selector)
        return cached

    def _compute_agency_set(self, selector: Selector) -> frozenset[str]:
        codes: set[str] | None = None
        if selector.agencies:
            codes = set()
            for ref in selector.agencies:
                if ref.code not in self.snapshot.agencies:
                    continue
                if ref.subtree:
                    codes.update(self.snapshot.subtree(ref.code))
                else:
                    codes.add(ref.code)
        if selector.kinds:
            of_kind: set[str] = set()
            for kind in selector.kinds:
                of_kind.update(self.by_kind[kind])
            codes = of_kind if codes is None else codes & of_kind
        return frozenset(codes or ())

    def related(self, relation: Relation, sender_agency: str, recipient_agency: str) -> bool:
        """Whether the recipient's agency stands in `relation` to the sender's."""
        a, b = sender_agency, recipient_agency
        if relation is Relation.SAME_AGENCY:
            return a == b
        if relation is Relation.SAME_SUBTREE:
            return a == b or a in self.ancestors.get(b, ())
        if relation is Relation.SAME_TREE:
            return self.root.get(a, a) == self.root.get(b, b)
        if relation is Relation.PARENT:
            return self.parent.get(a) == b
        if relation is Relation.CHILD:
            return self.parent.get(b) == a
        if relation is Relation.CHAIN_OF_COMMAND:
            return self.parent.get(a) == b or self.parent.get(b) == a
        return b in self.ancestors.get(a, ())  # ANCESTOR

    def mismatch(self, selector: Selector, party: Party, other: Party | None) -> str | None:
        """Why `party` does not match `selector` (None when it does).

        `other` is the sender when checking a recipient (for relations). This is
        the readable reference implementation; the engine's bit masks must agree.
        """
        employee = party.employee
        if selector.local is True and employee is None:
            return "is not a directory employee"
        if selector.local is False and employee is not None:
            return "is a directory employee, the rule wants a remote party"
        if selector.peers and party.peer not in selector.peers:
            where = "a directory employee" if party.peer is None else f"of peer {party.peer}"
            return f"is {where}, the rule wants peer {'|'.join(selector.peers)}"
        if employee is None and selector.local_only:
            return "is a remote party; the rule selects directory employees"
        if employee is not None:
            agencies = self.agency_set(selector)
            if agencies is not None and employee.agency not in agencies:
                record = self.snapshot.agencies.get(employee.agency)
                kind = record.kind.value if record is not None else "unknown kind"
                wanted = []
                if selector.agencies:
                    wanted.append("agency " + "|".join(str(r) for r in selector.agencies))
                if selector.kinds:
                    wanted.append("kind " + "|".join(k.value for k in selector.kinds))
                return f"agency {employee.agency} ({kind}) is not {' and '.join(wanted)}"
            if selector.roles and employee.role not in selector.roles:
                return f"role {employee.role} is not {'|'.join(selector.roles)}"
            if selector.clearance is not None and not selector.clearance.contains(
                employee.clearance
            ):
                return f"clearance {employee.clearance.label} is not {selector.clearance}"
        if selector.addresses and party.address not in selector.addresses:
            return f"address is not {'|'.join(selector.addresses)}"
        if selector.address_patterns and not any(
            compile_glob(p).fullmatch(party.address) for p in selector.address_patterns
        ):
            return f"address does not match {'|'.join(selector.address_patterns)}"
        if selector.relations:
            if other is None or other.employee is None or employee is None:
                return "relations need two directory employees"
            a, b = other.employee.agency, employee.agency
            if not any(self.related(rel, a, b) for rel in selector.relations):
                names = "|".join(r.value for r in selector.relations)
                return f"agency {b} is not {names} of the sender's agency {a}"
        return None

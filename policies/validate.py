"""Checks of a parsed policy against the directory and against itself.

Owns: unknown agencies, roles, peers and addresses; selectors that can match
nobody; rules made unreachable by an earlier rule. Must not: parse text or
decide; it only reports `Problem`s (a sound but not complete shadowing check).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from policies.directory import Clearance, DirectorySnapshot
from policies.problems import Problem, Severity
from policies.rules import ClearanceRange, Mode, PolicyDocument, Relation, RuleSpec, Selector
from policies.selectors import DirectoryIndex, compile_glob

# X implies Y: every recipient that is X of the sender is also Y of the sender.
_IMPLIES: Mapping[Relation, frozenset[Relation]] = {
    Relation.SAME_AGENCY: frozenset({Relation.SAME_SUBTREE, Relation.SAME_TREE}),
    Relation.SAME_SUBTREE: frozenset({Relation.SAME_TREE}),
    Relation.SAME_TREE: frozenset(),
    Relation.PARENT: frozenset({Relation.CHAIN_OF_COMMAND, Relation.ANCESTOR, Relation.SAME_TREE}),
    Relation.CHILD: frozenset(
        {Relation.CHAIN_OF_COMMAND, Relation.SAME_SUBTREE, Relation.SAME_TREE}
    ),
    Relation.CHAIN_OF_COMMAND: frozenset({Relation.SAME_TREE}),
    Relation.ANCESTOR: frozenset({Relation.SAME_TREE}),
}


def validate_document(
    document: PolicyDocument,
    snapshot: DirectorySnapshot,
    federation: Mapping[str, Collection[str]] | None = None,
    index: DirectoryIndex | None = None,
    *,
    shadowing: bool = True,
) -> list[Problem]:
    """Every problem that needs the directory or the whole rule list.

    Pass `shadowing=False` when the document already has parse errors: rules
    with dropped keys would look wider than written and give false alarms.
    """
    index = index or DirectoryIndex(snapshot, federation or {})
    checker = _Checker(document, index)
    checker.federation()
    for rule in document.rules:
        checker.references(rule, "sender", rule.sender)
        checker.references(rule, "recipient", rule.recipient)
    if shadowing:
        checker.shadowing()
    return checker.problems


class _Checker:
    def __init__(self, document: PolicyDocument, index: DirectoryIndex) -> None:
        self.document = document
        self.index = index
        self.file = document.source_name
        self.problems: list[Problem] = []
        self.roles = index.roles | frozenset(document.roles)

    def problem(
        self, line: int | None, rule: str | None, message: str, severity: Severity = Severity.ERROR
    ) -> None:
        self.problems.append(Problem(self.file, line, rule, message, severity))

    def federation(self) -> None:
        for domain, peer in sorted(self.index.domain_peer.items()):
            if domain in self.index.local_domains:
                self.problem(
                    None, None, f"federated domain {domain} (peer {peer}) is also a local domain"
                )

    def references(self, rule: RuleSpec, side: str, sel: Selector) -> None:
        agencies = self.index.snapshot.agencies
        for ref in sel.agencies:
            if ref.code not in agencies:
                self.problem(
                    rule.line_of(f"{side}.agency"),
                    rule.id,
                    f"{side}.agency: unknown agency {ref.code}",
                )
        for role in sel.roles:
            if role not in self.roles:
                known = ", ".join(sorted(self.roles)) or "none"
                self.problem(
                    rule.line_of(f"{side}.role"),
                    rule.id,
                    f"{side}.role: unknown role {role!r} (known: {known};"
                    " declare new roles under `roles:`)",
                )
        for peer in sel.peers:
            if peer not in self.index.federation:
                known = ", ".join(sorted(self.index.federation)) or "none"
                self.problem(
                    rule.line_of(f"{side}.peer"),
                    rule.id,
                    f"{side}.peer: unknown federated peer {peer!r} (known: {known})",
                )
        for address in sel.addresses:
            if self.index.resolve(address) is None:
                self.problem(
                    rule.line_of(f"{side}.address"),
                    rule.id,
                    f"{side}.address: {address} is not in the directory nor in a federated domain",
                )
        codes = self.index.agency_set(sel)
        known_refs = all(ref.code in agencies for ref in sel.agencies)
        if codes is not None and not codes and known_refs:
            self.problem(
                rule.line_of(side),
                rule.id,
                f"{side}: agency and kind together select no agency; the rule never matches",
                Severity.WARNING,
            )

    def shadowing(self) -> None:
        rules = self.document.rules
        for j, later in enumerate(rules):
            for earlier in rules[:j]:
                if self.covers(earlier, later):
                    self.problem(
                        later.line,
                        later.id,
                        f"unreachable: rule {earlier.id!r} (line {earlier.line}) has no conditions"
                        " and matches every party this rule does, so it always decides first",
                    )
                    break

    def covers(self, a: RuleSpec, b: RuleSpec) -> bool:
        """True when `a` always decides before `b` could (a sufficient test)."""
        if a.mode is not Mode.ENFORCE or not a.unconditional:
            return False
        return self.superset(a.sender, b.sender) and self.superset(a.recipient, b.recipient)

    def superset(self, a: Selector, b: Selector) -> bool:
        """Every party `b` matches, `a` matches too (sufficient, not necessary)."""
        peers = frozenset(self.index.federation)
        if self._matches_local(b):
            if not self._matches_local(a):
                return False
            if not self._local_keys_cover(a, b):
                return False
        b_peers = self._remote_peers(b, peers)
        if b_peers and not b_peers <= self._remote_peers(a, peers):
            return False
        return self._address_keys_cover(a, b)

    @staticmethod
    def _matches_local(sel: Selector) -> bool:
        return not sel.peers and sel.local is not False

    @staticmethod
    def _remote_peers(sel: Selector, peers: frozenset[str]) -> frozenset[str]:
        if sel.local_only:
            return frozenset()
        return frozenset(sel.peers) if sel.peers else peers

    def _local_keys_cover(self, a: Selector, b: Selector) -> bool:
        a_codes = self.index.agency_set(a)
        if a_codes is not None and a_codes != self.index.all_agencies:
            b_codes = self.index.agency_set(b)
            if b_codes is None or not b_codes <= a_codes:
                return False
        if a.roles and not (b.roles and set(b.roles) <= set(a.roles)):
            return False
        if a.clearance is not None and not _range_covers(a.clearance, b.clearance):
            return False
        if a.relations:
            if not b.relations:
                return False
            for rel in b.relations:
                if not any(r == rel or r in _IMPLIES[rel] for r in a.relations):
                    return False
        return True

    @staticmethod
    def _address_keys_cover(a: Selector, b: Selector) -> bool:
        if a.addresses and not (b.addresses and set(b.addresses) <= set(a.addresses)):
            return False
        if a.address_patterns:
            if b.address_patterns and set(b.address_patterns) <= set(a.address_patterns):
                return True
            regexes = [compile_glob(p) for p in a.address_patterns]
            return bool(b.addresses) and all(
                any(rx.fullmatch(address) for rx in regexes) for address in b.addresses
            )
        return True


def _range_covers(a: ClearanceRange, b: ClearanceRange | None) -> bool:
    b_low = Clearance.PUBLIC if b is None or b.at_least is None else b.at_least
    b_high = Clearance.SECRET if b is None or b.at_most is None else b.at_most
    a_low = Clearance.PUBLIC if a.at_least is None else a.at_least
    a_high = Clearance.SECRET if a.at_most is None else a.at_most
    return a_low <= b_low and b_high <= a_high

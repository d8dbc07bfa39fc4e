"""A policy's rules compiled for speed: condition predicates, party bit masks, rules.

Owns: turning `Conditions` into fact checks (True, False or None for a fact not
known yet), a side's selectors into one bit mask per party, and a `RuleSpec`
into a `CompiledRule`. Must not: decide anything (policies/engine.py does),
read files or keep mutable state.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from policies.decision import (
    Attachment,
    MessageFacts,
)
from policies.directory import Clearance
from policies.rules import (
    DEFAULT_ALLOW_REASON,
    ClearanceRange,
    Conditions,
    Effect,
    IntRange,
    Mode,
    Reason,
    RuleSpec,
    Selector,
)
from policies.selectors import DirectoryIndex, Party, compile_glob, domain_of_glob

# A condition check: True (holds), False (does not), None (needs an absent fact).
FactCheck = Callable[[MessageFacts], bool | None]


@dataclass(frozen=True, slots=True)
class Condition:
    name: str
    check: FactCheck
    wanted: str  # for traces: what the rule asks for


def _range_check(
    name: str, get: Callable[[MessageFacts], int | None], rng: IntRange | ClearanceRange
) -> Condition:
    def check(facts: MessageFacts) -> bool | None:
        value = get(facts)
        return None if value is None else rng.contains(value)  # type: ignore[arg-type]

    return Condition(name, check, f"{name} {rng}")


def _attachment_matcher(types: Sequence[str]) -> Callable[[Attachment], bool]:
    extensions = frozenset(t for t in types if "/" not in t)
    mimes = frozenset(t for t in types if "/" in t and not t.endswith("/*"))
    prefixes = tuple(t[:-1] for t in types if t.endswith("/*"))

    def matches(att: Attachment) -> bool:
        mime = att.mime_type.lower()
        return (
            att.extension in extensions
            or mime in mimes
            or bool(prefixes and mime.startswith(prefixes))
        )

    return matches


def compile_conditions(conditions: Conditions) -> tuple[Condition, ...]:
    out: list[Condition] = []
    if conditions.classification is not None:
        out.append(
            _range_check("classification", lambda f: f.classification, conditions.classification)
        )
    if conditions.attachments_any:
        any_match = _attachment_matcher(conditions.attachments_any)

        def any_of(facts: MessageFacts) -> bool | None:
            atts = facts.attachments
            return None if atts is None else any(any_match(a) for a in atts)

        out.append(
            Condition(
                "attachments",
                any_of,
                f"any attachment of type {'|'.join(conditions.attachments_any)}",
            )
        )
    if conditions.attachments_only:
        only_match = _attachment_matcher(conditions.attachments_only)

        def only(facts: MessageFacts) -> bool | None:
            atts = facts.attachments
            return None if atts is None else all(only_match(a) for a in atts)

        out.append(
            Condition(
                "attachments",
                only,
                f"only attachments of type {'|'.join(conditions.attachments_only)}",
            )
        )
    if conditions.size is not None:
        out.append(_range_check("size", lambda f: f.size, conditions.size))
    if conditions.recipients is not None:
        out.append(_range_check("recipients", lambda f: f.recipient_count, conditions.recipients))
    if conditions.rate_per_hour is not None:
        out.append(
            _range_check(
                "rate_per_hour", lambda f: f.sender_messages_last_hour, conditions.rate_per_hour
            )
        )
    return tuple(out)


def combine(checks: tuple[Condition, ...]) -> FactCheck | None:
    if not checks:
        return None
    if len(checks) == 1:
        return checks[0].check
    fns = tuple(c.check for c in checks)

    def combined(facts: MessageFacts) -> bool | None:
        unknown = False
        for fn in fns:
            result = fn(facts)
            if result is False:
                return False
            if result is None:
                unknown = True
        return None if unknown else True

    return combined


@dataclass(frozen=True, slots=True)
class CompiledRule:
    spec: RuleSpec
    conditions: tuple[Condition, ...]
    check: FactCheck | None
    relation: Callable[[str, str], bool] | None
    audit: bool
    deny: bool
    reason: Reason


class SideMasks:
    """Bit masks of the rules whose selector (one side, without relations) a party matches."""

    def __init__(self, selectors: Sequence[Selector], index: DirectoryIndex) -> None:
        agencies = index.snapshot.agencies
        self.agency_free = 0
        self.role_free = 0
        self.addr_free = 0
        self.pat_free = 0
        self.local = 0
        agency_mask = dict.fromkeys(agencies, 0)
        role_mask: dict[str, int] = {}
        clearance_mask = [0] * len(Clearance)
        self.addr_exact: dict[str, int] = {}
        self.pat_domain: dict[str, int] = {}
        generic: list[tuple[Any, int]] = []
        self.peer: dict[str, int] = dict.fromkeys(index.federation, 0)
        for i, sel in enumerate(selectors):
            bit = 1 << i
            codes = index.agency_set(sel)
            if codes is None:
                self.agency_free |= bit
            else:
                for code in codes:
                    agency_mask[code] |= bit
            if sel.roles:
                for role in sel.roles:
                    role_mask[role] = role_mask.get(role, 0) | bit
            else:
                self.role_free |= bit
            for level in Clearance:
                if sel.clearance is None or sel.clearance.contains(level):
                    clearance_mask[level] |= bit
            if sel.addresses:
                for address in sel.addresses:
                    self.addr_exact[address] = self.addr_exact.get(address, 0) | bit
            else:
                self.addr_free |= bit
            if sel.address_patterns:
                for pattern in sel.address_patterns:
                    domain = domain_of_glob(pattern)
                    if domain is not None:
                        self.pat_domain[domain] = self.pat_domain.get(domain, 0) | bit
                    else:
                        generic.append((compile_glob(pattern), bit))
            else:
                self.pat_free |= bit
            if not sel.peers and sel.local is not False:
                self.local |= bit
            if not sel.local_only:
                for peer in self.peer:
                    if not sel.peers or peer in sel.peers:
                        self.peer[peer] |= bit
        self.agency = {code: mask | self.agency_free for code, mask in agency_mask.items()}
        self.role = {role: mask | self.role_free for role, mask in role_mask.items()}
        self.clearance = tuple(clearance_mask)
        self.pat_generic = tuple(generic)

    def mask(self, party: Party) -> int:
        employee = party.employee
        if employee is not None:
            m = (
                self.local
                & self.agency.get(employee.agency, self.agency_free)
                & self.role.get(employee.role, self.role_free)
                & self.clearance[employee.clearance]
            )
        else:
            m = self.peer.get(party.peer or "", 0)
        if not m:
            return 0
        address = party.address
        m &= self.addr_free | self.addr_exact.get(address, 0)
        if m & ~self.pat_free:
            ok = self.pat_free | self.pat_domain.get(party.domain, 0)
            for regex, bit in self.pat_generic:
                if m & bit and not ok & bit and regex.fullmatch(address):
                    ok |= bit
            m &= ok
        return m


def compile_rule(spec: RuleSpec, index: DirectoryIndex) -> CompiledRule:
    conditions = compile_conditions(spec.conditions)
    relation: Callable[[str, str], bool] | None = None
    if spec.recipient.relations:
        relations = spec.recipient.relations
        related = index.related

        def relation(a: str, b: str) -> bool:
            return any(related(rel, a, b) for rel in relations)

    reason = spec.reason or DEFAULT_ALLOW_REASON
    return CompiledRule(
        spec=spec,
        conditions=conditions,
        check=combine(conditions),
        relation=relation,
        audit=spec.mode is Mode.AUDIT,
        deny=spec.effect is Effect.DENY,
        reason=reason,
    )


def bit_positions(mask: int) -> list[int]:
    out = []
    while mask:
        low = mask & -mask
        out.append(low.bit_length() - 1)
        mask ^= low
    return out

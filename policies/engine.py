"""The compiled policy: `Policy.decide(sender, recipient, facts) -> Decision`.

Owns: compiling a `PolicyDocument` against one `DirectorySnapshot` into bit
masks and predicates, and the first-match evaluation with RCPT-time (partial
facts) semantics. Must not: read files, use a clock or keep mutable state.

Evaluation, in order:
1. Parties: an unknown recipient gives rule "unknown-recipient", an inactive one
   "inactive-recipient"; likewise "unknown-sender" / "inactive-sender".
2. Built-in rule "clearance" (docs/CONTRACT.md §4), when the classification is known: it
   must not exceed a local sender's or a local recipient's clearance.
3. Rules in file order; the first enforce rule that matches decides. An audit
   rule that matches is recorded in `audit_hits` and evaluation goes on.
4. The default (deny unless the file says otherwise).

A rule whose conditions need a fact that was not given is "undetermined": an
allow rule then decides provisionally (`final=False`); a deny rule is skipped,
and any later allow is provisional too. The caller decides again at end of data
with every fact; only that decision's `audit_hits` should be logged.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from policies.decision import (
    CLEARANCE_RULE,
    DEFAULT_RULE,
    INACTIVE_RECIPIENT_REASON,
    INACTIVE_RECIPIENT_RULE,
    INACTIVE_SENDER_REASON,
    INACTIVE_SENDER_RULE,
    RCPT_TIME,
    UNKNOWN_RECIPIENT_REASON,
    UNKNOWN_RECIPIENT_RULE,
    UNKNOWN_SENDER_REASON,
    UNKNOWN_SENDER_RULE,
    Attachment,
    AuditHit,
    Decision,
    MessageFacts,
    StepOutcome,
    TraceStep,
    clearance_reason,
)
from policies.directory import Clearance, DirectorySnapshot, EmployeeStatus
from policies.rules import (
    DEFAULT_ALLOW_REASON,
    DEFAULT_DENY_REASON,
    ClearanceRange,
    Conditions,
    Effect,
    IntRange,
    Mode,
    PolicyDocument,
    Reason,
    RuleSpec,
    Selector,
)
from policies.selectors import DirectoryIndex, Party, compile_glob, domain_of_glob

# A condition check: True (holds), False (does not), None (needs an absent fact).
FactCheck = Callable[[MessageFacts], bool | None]


@dataclass(frozen=True, slots=True)
class _Condition:
    name: str
    check: FactCheck
    wanted: str  # for traces: what the rule asks for


def _range_check(
    name: str, get: Callable[[MessageFacts], int | None], rng: IntRange | ClearanceRange
) -> _Condition:
    def check(facts: MessageFacts) -> bool | None:
        value = get(facts)
        return None if value is None else rng.contains(value)  # type: ignore[arg-type]

    return _Condition(name, check, f"{name} {rng}")


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


def compile_conditions(conditions: Conditions) -> tuple[_Condition, ...]:
    out: list[_Condition] = []
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
            _Condition(
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
            _Condition(
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


def _combine(checks: tuple[_Condition, ...]) -> FactCheck | None:
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
    conditions: tuple[_Condition, ...]
    check: FactCheck | None
    relation: Callable[[str, str], bool] | None
    audit: bool
    deny: bool
    reason: Reason


class _SideMasks:
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


class Policy:
    """A policy compiled against one directory snapshot and federation map. Immutable.

    `federation` maps a peer name to the mail domains of that peer's network.
    Compile once (`Policy(document, snapshot, federation)`), then call `decide`
    from any thread; to change policy or directory, build a new `Policy`.
    """

    __slots__ = (
        "_by_address",
        "_default",
        "_default_allow",
        "_recipient_masks",
        "_rules",
        "_sender_masks",
        "document",
        "federation",
        "index",
        "snapshot",
    )

    document: PolicyDocument
    snapshot: DirectorySnapshot
    index: DirectoryIndex
    federation: Mapping[str, frozenset[str]]
    _rules: tuple[CompiledRule, ...]
    _sender_masks: _SideMasks
    _recipient_masks: _SideMasks
    _by_address: dict[str, tuple[Party, int, int]]
    _default_allow: bool
    _default: Decision

    def __init__(
        self,
        document: PolicyDocument,
        snapshot: DirectorySnapshot,
        federation: Mapping[str, Collection[str]] | None = None,
    ) -> None:
        index = DirectoryIndex(snapshot, federation or {})
        rules = tuple(self._compile_rule(spec, index) for spec in document.rules)
        senders = _SideMasks([r.sender for r in document.rules], index)
        recipients = _SideMasks([r.recipient for r in document.rules], index)
        by_address: dict[str, tuple[Party, int, int]] = {}
        for address, employee in snapshot.employees.items():
            party = Party(address, employee, None)
            by_address[address] = (party, senders.mask(party), recipients.mask(party))
        default_allow = document.default_effect is Effect.ALLOW
        default_reason = document.default_reason
        if default_allow and default_reason == DEFAULT_DENY_REASON:
            default_reason = DEFAULT_ALLOW_REASON
        set_ = object.__setattr__
        set_(self, "document", document)
        set_(self, "snapshot", snapshot)
        set_(self, "index", index)
        set_(self, "federation", index.federation)
        set_(self, "_rules", rules)
        set_(self, "_sender_masks", senders)
        set_(self, "_recipient_masks", recipients)
        set_(self, "_by_address", by_address)
        set_(self, "_default_allow", default_allow)
        set_(
            self,
            "_default",
            Decision(default_allow, document.default_effect, DEFAULT_RULE, default_reason),
        )

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Policy is immutable; build a new one")

    @staticmethod
    def _compile_rule(spec: RuleSpec, index: DirectoryIndex) -> CompiledRule:
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
            check=_combine(conditions),
            relation=relation,
            audit=spec.mode is Mode.AUDIT,
            deny=spec.effect is Effect.DENY,
            reason=reason,
        )

    # -- public ------------------------------------------------------------------

    @property
    def source_hash(self) -> str:
        return self.document.source_hash

    @property
    def source_name(self) -> str:
        return self.document.source_name

    @property
    def rules(self) -> tuple[RuleSpec, ...]:
        return self.document.rules

    def resolve(self, address: str) -> Party | None:
        """The party behind an address (None: neither in the directory nor federated)."""
        hit = self._by_address.get(address.strip().lower())
        return hit[0] if hit is not None else self.index.resolve(address)

    def decide(self, sender: str, recipient: str, facts: MessageFacts = RCPT_TIME) -> Decision:
        """Decide whether `sender` may address `recipient` given what is known of the message."""
        return self._evaluate(sender, recipient, facts, None)

    def decide_traced(
        self, sender: str, recipient: str, facts: MessageFacts = RCPT_TIME
    ) -> tuple[Decision, tuple[TraceStep, ...]]:
        """Like `decide`, with one trace step per built-in check and per rule."""
        trace: list[TraceStep] = []
        decision = self._evaluate(sender, recipient, facts, trace)
        return decision, tuple(trace)

    # -- evaluation ----------------------------------------------------------------

    def _party(self, address: str, side: int) -> tuple[Party, int] | None:
        key = address.strip().lower()
        hit = self._by_address.get(key)
        if hit is not None:
            return hit[0], (hit[1] if side == 1 else hit[2])
        party = self.index.resolve(key)
        if party is None:
            return None
        masks = self._sender_masks if side == 1 else self._recipient_masks
        return party, masks.mask(party)

    def _evaluate(
        self, sender: str, recipient: str, facts: MessageFacts, trace: list[TraceStep] | None
    ) -> Decision:
        rcpt = self._party(recipient, 2)
        snd = self._party(sender, 1)
        early = self._parties_check(snd, rcpt)
        if early is not None:
            if trace is not None:
                trace.append(TraceStep(early.rule_id, StepOutcome.DECIDED, early.reason.en))
                self._not_reached(trace, 0)
            return early
        assert snd is not None and rcpt is not None
        s, s_mask = snd
        r, r_mask = rcpt
        se, re_ = s.employee, r.employee

        # Built-in clearance rule (docs/CONTRACT.md §4).
        classification = facts.classification
        clearance_open = False
        if classification is not None:
            for who, employee in (("sender", se), ("recipient", re_)):
                if employee is not None and classification > employee.clearance:
                    decision = Decision(
                        False,
                        Effect.DENY,
                        CLEARANCE_RULE,
                        clearance_reason(classification, who, employee.clearance),
                    )
                    if trace is not None:
                        trace.append(
                            TraceStep(CLEARANCE_RULE, StepOutcome.DECIDED, decision.reason.en)
                        )
                        self._not_reached(trace, 0)
                    return decision
        else:
            clearance_open = (se is not None and se.clearance < Clearance.SECRET) or (
                re_ is not None and re_.clearance < Clearance.SECRET
            )
        if trace is not None:
            detail = (
                "classification unknown: checked again when it is known"
                if clearance_open
                else "classification within the clearances"
                if classification is not None
                else "every local party is cleared for secret"
            )
            outcome = StepOutcome.UNDETERMINED if clearance_open else StepOutcome.PASSED
            trace.append(TraceStep(CLEARANCE_RULE, outcome, detail))

        pending = clearance_open  # could a missing fact still turn an allow into a deny?
        hits: list[AuditHit] = []
        rules = self._rules
        if trace is None:
            candidates = s_mask & r_mask
            positions: Any = _bit_positions(candidates)
        else:
            positions = range(len(rules))
        for i in positions:
            rule = rules[i]
            if trace is not None:
                why = self._party_mismatch(rule, s, r)
                if why is not None:
                    trace.append(TraceStep(rule.spec.id, StepOutcome.NO_MATCH, why, rule.spec.line))
                    continue
            elif rule.relation is not None and (
                se is None or re_ is None or not rule.relation(se.agency, re_.agency)
            ):
                continue
            result = True if rule.check is None else rule.check(facts)
            if result is False:
                if trace is not None:
                    trace.append(self._condition_step(rule, facts, StepOutcome.NO_MATCH))
                continue
            if rule.audit:
                if result is True:
                    hits.append(AuditHit(rule.spec.id, rule.reason))
                if trace is not None:
                    outcome = StepOutcome.AUDIT_HIT if result else StepOutcome.UNDETERMINED
                    detail = "matched; would have denied (audit mode: logged, not enforced)"
                    if result is None:
                        trace.append(self._condition_step(rule, facts, outcome))
                    else:
                        trace.append(TraceStep(rule.spec.id, outcome, detail, rule.spec.line))
                continue
            if result is None and rule.deny:
                pending = True
                if trace is not None:
                    trace.append(self._condition_step(rule, facts, StepOutcome.UNDETERMINED))
                continue
            allowed = not rule.deny
            decision = Decision(
                allowed,
                rule.spec.effect,
                rule.spec.id,
                rule.reason,
                Mode.ENFORCE,
                final=not allowed or (result is True and not pending),
                audit_hits=tuple(hits),
            )
            if trace is not None:
                if result is None:
                    step = self._condition_step(rule, facts, StepOutcome.DECIDED)
                    trace.append(step)
                else:
                    effect = "allowed" if allowed else "denied"
                    if not decision.final:
                        effect += " provisionally (a skipped check still awaits facts)"
                    trace.append(
                        TraceStep(
                            rule.spec.id, StepOutcome.DECIDED, f"matched: {effect}", rule.spec.line
                        )
                    )
                self._not_reached(trace, i + 1)
            return decision
        default = self._default
        if trace is not None:
            trace.append(
                TraceStep(
                    DEFAULT_RULE,
                    StepOutcome.DECIDED,
                    f"no rule decided: default {default.effect.value}",
                    self.document.default_line,
                )
            )
        if hits or (pending and self._default_allow):
            return Decision(
                default.allowed,
                default.effect,
                DEFAULT_RULE,
                default.reason,
                final=not (pending and self._default_allow),
                audit_hits=tuple(hits),
            )
        return default

    @staticmethod
    def _parties_check(
        snd: tuple[Party, int] | None, rcpt: tuple[Party, int] | None
    ) -> Decision | None:
        if rcpt is None:
            return Decision(False, Effect.DENY, UNKNOWN_RECIPIENT_RULE, UNKNOWN_RECIPIENT_REASON)
        employee = rcpt[0].employee
        if employee is not None and employee.status is not EmployeeStatus.ACTIVE:
            return Decision(False, Effect.DENY, INACTIVE_RECIPIENT_RULE, INACTIVE_RECIPIENT_REASON)
        if snd is None:
            return Decision(False, Effect.DENY, UNKNOWN_SENDER_RULE, UNKNOWN_SENDER_REASON)
        employee = snd[0].employee
        if employee is not None and employee.status is not EmployeeStatus.ACTIVE:
            return Decision(False, Effect.DENY, INACTIVE_SENDER_RULE, INACTIVE_SENDER_REASON)
        return None

    # -- tracing helpers (slow path, readable) ------------------------------------------

    def _party_mismatch(self, rule: CompiledRule, s: Party, r: Party) -> str | None:
        why = self.index.mismatch(rule.spec.sender, s, None)
        if why is not None:
            return f"sender {why}"
        why = self.index.mismatch(rule.spec.recipient, r, s)
        return None if why is None else f"recipient {why}"

    @staticmethod
    def _condition_step(rule: CompiledRule, facts: MessageFacts, outcome: StepOutcome) -> TraceStep:
        failed = [c.wanted for c in rule.conditions if c.check(facts) is False]
        unknown = [c.name for c in rule.conditions if c.check(facts) is None]
        if failed:
            detail = "parties match; condition not met: " + "; ".join(failed)
        elif outcome is StepOutcome.DECIDED:
            detail = (
                f"parties match; {', '.join(unknown)} not known yet: allowed provisionally,"
                " decided again with the full message"
            )
        else:
            verb = "audit rule" if rule.audit else "deny rule skipped"
            detail = (
                f"parties match; {', '.join(unknown)} not known yet: {verb},"
                " checked again with the full message"
            )
        return TraceStep(rule.spec.id, outcome, detail, rule.spec.line)

    def _not_reached(self, trace: list[TraceStep], start: int) -> None:
        for rule in self._rules[start:]:
            trace.append(
                TraceStep(
                    rule.spec.id, StepOutcome.NOT_REACHED, "an earlier step decided", rule.spec.line
                )
            )


def _bit_positions(mask: int) -> list[int]:
    out = []
    while mask:
        low = mask & -mask
        out.append(low.bit_length() - 1)
        mask ^= low
    return out

"""The compiled policy: `Policy.decide(sender, recipient, facts) -> Decision`.

Owns: building a `Policy` from a `PolicyDocument` and one `DirectorySnapshot`
(the rules' bit masks and predicates come from policies/compiled.py), and the
first-match evaluation with RCPT-time (partial facts) semantics. Must not: read
files, use a clock or keep mutable state.

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

from collections.abc import Collection, Iterable, Mapping

from policies.compiled import CompiledRule, SideMasks, bit_positions, compile_rule
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
    Effect,
    Mode,
    PolicyDocument,
    RuleSpec,
)
from policies.selectors import DirectoryIndex, Party


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
    _sender_masks: SideMasks
    _recipient_masks: SideMasks
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
        rules = tuple(compile_rule(spec, index) for spec in document.rules)
        senders = SideMasks([r.sender for r in document.rules], index)
        recipients = SideMasks([r.recipient for r in document.rules], index)
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

    def __reduce__(self) -> tuple[type[Policy], tuple[object, ...]]:
        """Pickled as what it was compiled from (the compiled rules are closures): the
        other side compiles it again, once (gateway.checks.pool sends it once per version)."""
        return Policy, (self.document, self.snapshot, dict(self.federation))

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
        denied, clearance_open = self._clearance(s, r, facts.classification, trace)
        if denied is not None:
            return denied
        # `pending`: could a missing fact still turn an allow into a deny?
        hits: list[AuditHit] = []
        decision, pending = self._first_rule(
            s, r, s_mask & r_mask, facts, clearance_open, hits, trace
        )
        if decision is not None:
            return decision
        return self._by_default(hits, pending, trace)

    def _clearance(
        self, s: Party, r: Party, classification: Clearance | None, trace: list[TraceStep] | None
    ) -> tuple[Decision | None, bool]:
        """Built-in clearance rule (docs/CONTRACT.md §4): (denial or None, still open for lack of
        the classification)."""
        se, re_ = s.employee, r.employee
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
                    return decision, False
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
        return None, clearance_open

    def _first_rule(
        self,
        s: Party,
        r: Party,
        candidates: int,
        facts: MessageFacts,
        pending: bool,
        hits: list[AuditHit],
        trace: list[TraceStep] | None,
    ) -> tuple[Decision | None, bool]:
        """The rules in file order: (the first enforce rule's decision or None, pending).
        Audit rules that match are added to `hits`."""
        se, re_ = s.employee, r.employee
        rules = self._rules
        # The fast path visits only the rules whose parties match; a trace shows every rule.
        positions: Iterable[int] = bit_positions(candidates) if trace is None else range(len(rules))
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
                    trace.append(self._audit_step(rule, facts, result))
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
                trace.append(self._decided_step(rule, facts, result, decision))
                self._not_reached(trace, i + 1)
            return decision, pending
        return None, pending

    def _by_default(
        self, hits: list[AuditHit], pending: bool, trace: list[TraceStep] | None
    ) -> Decision:
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

    @classmethod
    def _audit_step(cls, rule: CompiledRule, facts: MessageFacts, result: bool | None) -> TraceStep:
        if result is None:
            return cls._condition_step(rule, facts, StepOutcome.UNDETERMINED)
        detail = "matched; would have denied (audit mode: logged, not enforced)"
        return TraceStep(rule.spec.id, StepOutcome.AUDIT_HIT, detail, rule.spec.line)

    @classmethod
    def _decided_step(
        cls, rule: CompiledRule, facts: MessageFacts, result: bool | None, decision: Decision
    ) -> TraceStep:
        if result is None:
            return cls._condition_step(rule, facts, StepOutcome.DECIDED)
        effect = "allowed" if decision.allowed else "denied"
        if not decision.final:
            effect += " provisionally (a skipped check still awaits facts)"
        return TraceStep(rule.spec.id, StepOutcome.DECIDED, f"matched: {effect}", rule.spec.line)

    def _not_reached(self, trace: list[TraceStep], start: int) -> None:
        for rule in self._rules[start:]:
            trace.append(
                TraceStep(
                    rule.spec.id, StepOutcome.NOT_REACHED, "an earlier step decided", rule.spec.line
                )
            )

"""Properties over random policies, parties and facts (hypothesis).

Policies are built directly from rule values (skipping file validation), so
shadowed or odd rules are exercised too.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from policies.decision import Attachment, MessageFacts, StepOutcome
from policies.directory import AgencyKind, Clearance
from policies.engine import Policy
from policies.rules import (
    AgencyRef,
    ClearanceRange,
    Conditions,
    Effect,
    IntRange,
    Mode,
    PolicyDocument,
    Reason,
    Relation,
    RuleSpec,
    Selector,
)
from testkit.policy import DEMO_EMPLOYEES, FEDERATION, build_demo_snapshot

SNAPSHOT = build_demo_snapshot()
CODES = sorted(SNAPSHOT.agencies)
ADDRESSES = [e[0] for e in DEMO_EMPLOYEES] + [
    "registry@region.gov.example",
    "minister@region.gov.example",
    "nobody@moh.gov.example",
]
PATTERNS = ["*@moh.gov.example", "registr*@*", "*@region.gov.example", "planning.*@*", "?lerk@*"]
REASON = Reason("Refused.", "مرفوض.")

clearances = st.sampled_from(list(Clearance))


def small_lists(values: list[Any]) -> st.SearchStrategy[tuple[Any, ...]]:
    return st.lists(st.sampled_from(values), min_size=1, max_size=2, unique=True).map(tuple)


@st.composite
def clearance_ranges(draw: st.DrawFn) -> ClearanceRange:
    low, high = sorted([draw(clearances), draw(clearances)])
    return ClearanceRange(draw(st.sampled_from([low, None])), draw(st.sampled_from([high, None])))


@st.composite
def selectors(draw: st.DrawFn, recipient: bool) -> Selector:
    fields: dict[str, object] = {}
    if draw(st.booleans()):
        fields["agencies"] = draw(
            small_lists([AgencyRef(c, s) for c in CODES for s in (False, True)])
        )
    if draw(st.integers(0, 3)) == 0:
        fields["kinds"] = draw(small_lists(list(AgencyKind)))
    if draw(st.integers(0, 3)) == 0:
        fields["roles"] = draw(small_lists(["minister", "director", "clerk", "registrar"]))
    if draw(st.integers(0, 3)) == 0:
        fields["clearance"] = draw(clearance_ranges())
    if draw(st.integers(0, 5)) == 0:
        fields["addresses"] = draw(small_lists(ADDRESSES))
    if draw(st.integers(0, 4)) == 0:
        fields["address_patterns"] = draw(small_lists(PATTERNS))
    if draw(st.integers(0, 6)) == 0:
        fields["peers"] = ("region",)
    if draw(st.integers(0, 6)) == 0:
        fields["local"] = draw(st.booleans())
    if recipient and draw(st.integers(0, 2)) == 0:
        fields["relations"] = draw(small_lists(list(Relation)))
    return Selector(**fields)  # type: ignore[arg-type]


@st.composite
def conditions(draw: st.DrawFn) -> Conditions:
    fields: dict[str, object] = {}
    if draw(st.integers(0, 3)) == 0:
        fields["classification"] = draw(clearance_ranges())
    if draw(st.integers(0, 4)) == 0:
        fields["attachments_any"] = draw(small_lists(["exe", "pdf", "image/*"]))
    if draw(st.integers(0, 5)) == 0:
        fields["attachments_only"] = draw(small_lists(["pdf", "application/pdf"]))
    if draw(st.integers(0, 4)) == 0:
        fields["size"] = IntRange(at_least=draw(st.integers(0, 2000)))
    if draw(st.integers(0, 5)) == 0:
        fields["recipients"] = IntRange(at_most=draw(st.integers(1, 10)))
    if draw(st.integers(0, 5)) == 0:
        fields["rate_per_hour"] = IntRange(at_least=draw(st.integers(0, 100)))
    return Conditions(**fields)  # type: ignore[arg-type]


@st.composite
def rules(draw: st.DrawFn, rule_id: str, mode: Mode | None = None) -> RuleSpec:
    effect = Effect.DENY if mode is Mode.AUDIT else draw(st.sampled_from(list(Effect)))
    return RuleSpec(
        id=rule_id,
        description="random",
        effect=effect,
        sender=draw(selectors(recipient=False)),
        recipient=draw(selectors(recipient=True)),
        conditions=draw(conditions()),
        reason=REASON,
        mode=mode
        or (Mode.AUDIT if effect is Effect.DENY and draw(st.integers(0, 4)) == 0 else Mode.ENFORCE),
    )


@st.composite
def documents(draw: st.DrawFn, max_rules: int = 8) -> PolicyDocument:
    count = draw(st.integers(0, max_rules))
    return PolicyDocument(rules=tuple(draw(rules(f"r{i}")) for i in range(count)))


optional = lambda strategy: st.one_of(st.none(), strategy)  # noqa: E731
facts_strategy = st.builds(
    MessageFacts,
    classification=optional(clearances),
    attachments=optional(
        st.lists(
            st.sampled_from(
                [
                    Attachment("a.pdf", "application/pdf"),
                    Attachment("b.exe"),
                    Attachment("c", "image/png"),
                ]
            ),
            max_size=3,
        ).map(tuple)
    ),
    size=optional(st.integers(0, 3000)),
    recipient_count=optional(st.integers(1, 12)),
    sender_messages_last_hour=optional(st.integers(0, 150)),
)
addresses = st.sampled_from(ADDRESSES)


def compile_doc(document: PolicyDocument) -> Policy:
    return Policy(document, SNAPSHOT, FEDERATION)


def outcome(
    policy: Policy, sender: str, recipient: str, facts: MessageFacts
) -> tuple[bool, str, bool]:
    d = policy.decide(sender, recipient, facts)
    return d.allowed, d.rule_id, d.final


@settings(max_examples=150, deadline=None)
@given(documents(), addresses, addresses, facts_strategy)
def test_fast_path_agrees_with_the_traced_reference(
    document: PolicyDocument, sender: str, recipient: str, facts: MessageFacts
) -> None:
    policy = compile_doc(document)
    decision, trace = policy.decide_traced(sender, recipient, facts)
    assert policy.decide(sender, recipient, facts) == decision
    decided = [s for s in trace if s.outcome is StepOutcome.DECIDED]
    assert len(decided) == 1 and decided[0].rule_id == decision.rule_id
    assert [h.rule_id for h in decision.audit_hits] == [
        s.rule_id for s in trace if s.outcome is StepOutcome.AUDIT_HIT
    ]


@settings(max_examples=150, deadline=None)
@given(documents(), addresses, addresses, facts_strategy)
def test_without_a_matching_allow_rule_the_answer_is_deny(
    document: PolicyDocument, sender: str, recipient: str, facts: MessageFacts
) -> None:
    policy = compile_doc(document)
    s, r = policy.resolve(sender), policy.resolve(recipient)
    allow_could_match = (
        s is not None
        and r is not None
        and any(
            rule.effect is Effect.ALLOW
            and policy.index.mismatch(rule.sender, s, None) is None
            and policy.index.mismatch(rule.recipient, r, s) is None
            and all(c.check(facts) is not False for c in policy._rules[i].conditions)
            for i, rule in enumerate(document.rules)
        )
    )
    if not allow_could_match:
        decision = policy.decide(sender, recipient, facts)
        assert not decision.allowed


@settings(max_examples=100, deadline=None)
@given(documents(), st.data(), addresses, addresses, facts_strategy)
def test_an_audit_rule_never_blocks(
    document: PolicyDocument, data: st.DataObject, sender: str, recipient: str, facts: MessageFacts
) -> None:
    audit = data.draw(rules("audit-x", Mode.AUDIT))
    at = data.draw(st.integers(0, len(document.rules)))
    with_audit = replace(document, rules=(*document.rules[:at], audit, *document.rules[at:]))
    before = outcome(compile_doc(document), sender, recipient, facts)
    after = outcome(compile_doc(with_audit), sender, recipient, facts)
    assert after == before


@settings(max_examples=100, deadline=None)
@given(documents(max_rules=6), st.data(), addresses, addresses, facts_strategy)
def test_swapping_two_rules_that_cannot_both_match_changes_nothing(
    document: PolicyDocument, data: st.DataObject, sender: str, recipient: str, facts: MessageFacts
) -> None:
    first = data.draw(rules("swap-a"))
    second = data.draw(rules("swap-b"))
    a, b = data.draw(st.lists(st.sampled_from(CODES), min_size=2, max_size=2, unique=True))
    # Disjoint senders: exactly agency a versus exactly agency b.
    first = replace(first, sender=replace(first.sender, agencies=(AgencyRef(a),)))
    second = replace(second, sender=replace(second.sender, agencies=(AgencyRef(b),)))
    at = data.draw(st.integers(0, len(document.rules)))
    head, tail = document.rules[:at], document.rules[at:]
    one = compile_doc(replace(document, rules=(*head, first, second, *tail)))
    two = compile_doc(replace(document, rules=(*head, second, first, *tail)))
    assert one.decide(sender, recipient, facts) == two.decide(sender, recipient, facts)


@settings(max_examples=50, deadline=None)
@given(addresses, addresses, facts_strategy)
def test_an_empty_policy_denies(sender: str, recipient: str, facts: MessageFacts) -> None:
    assert not compile_doc(PolicyDocument()).decide(sender, recipient, facts).allowed

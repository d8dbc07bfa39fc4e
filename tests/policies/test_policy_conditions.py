"""Conditions, audit mode, partial (RCPT-time) facts, parties and the built-in clearance rule."""

from __future__ import annotations

from dataclasses import replace

import pytest

from policies.decision import Attachment, MessageFacts
from policies.directory import Clearance, DirectorySnapshot
from policies.rules import Effect, Mode
from testkit.policy import make_policy

MOH_MIN = "minister@moh.gov.example"
MOF_MIN = "minister@mof.gov.example"
MOF_CLERK = "clerk@mof.gov.example"
PLN_CLERK = "planning.clerk@moh.gov.example"
REGISTRY = "registry@region.gov.example"

FULL = MessageFacts(
    classification=Clearance.INTERNAL,
    attachments=(Attachment("letter.pdf", "application/pdf"),),
    size=100_000,
    recipient_count=1,
    sender_messages_last_hour=0,
)


def facts(**changes: object) -> MessageFacts:
    """Complete facts, with some changed."""
    return replace(FULL, **changes)  # type: ignore[arg-type]


def att(*names: str) -> tuple[Attachment, ...]:
    out = []
    for name in names:
        filename, _, mime = name.partition(" ")
        out.append(Attachment(filename, mime))
    return tuple(out)


# (condition, facts, matches)
CONDITION_TABLE = [
    ("{classification: {at_least: confidential}}", facts(classification=Clearance.SECRET), True),
    (
        "{classification: {at_least: confidential}}",
        facts(classification=Clearance.CONFIDENTIAL),
        True,
    ),
    ("{classification: {at_least: confidential}}", facts(classification=Clearance.INTERNAL), False),
    ("{classification: {at_most: internal}}", facts(classification=Clearance.PUBLIC), True),
    ("{classification: {at_most: internal}}", facts(classification=Clearance.SECRET), False),
    ("{attachments: {any_of: [exe, .js]}}", facts(attachments=att("a.pdf", "b.EXE")), True),
    ("{attachments: {any_of: [exe, .js]}}", facts(attachments=att("run.js")), True),
    ("{attachments: {any_of: [exe, .js]}}", facts(attachments=att("a.pdf", "exe")), False),
    ("{attachments: {any_of: [exe]}}", facts(attachments=()), False),
    (
        "{attachments: {any_of: [application/x-msdownload]}}",
        facts(attachments=att("t.bin application/x-msdownload")),
        True,
    ),
    ("{attachments: {any_of: [image/*]}}", facts(attachments=att("scan.dat image/png")), True),
    (
        "{attachments: {any_of: [image/*]}}",
        facts(attachments=att("scan.dat application/pdf")),
        False,
    ),
    (
        "{attachments: {only: [pdf, application/pdf]}}",
        facts(attachments=att("a.pdf", "b.x application/pdf")),
        True,
    ),
    ("{attachments: {only: [pdf]}}", facts(attachments=att("a.pdf", "b.docx")), False),
    ("{attachments: {only: [pdf]}}", facts(attachments=()), True),
    ("{size: {at_least: 10MB}}", facts(size=10_000_000), True),
    ("{size: {at_least: 10MB}}", facts(size=9_999_999), False),
    ("{size: {at_most: 1KiB}}", facts(size=1024), True),
    ("{size: {at_most: 1KiB}}", facts(size=1025), False),
    ("{recipients: {at_least: 5, at_most: 10}}", facts(recipient_count=5), True),
    ("{recipients: {at_least: 5, at_most: 10}}", facts(recipient_count=11), False),
    ("{rate_per_hour: {at_least: 100}}", facts(sender_messages_last_hour=100), True),
    ("{rate_per_hour: {at_least: 100}}", facts(sender_messages_last_hour=99), False),
    # conditions combine with AND
    (
        "{classification: {at_least: secret}, size: {at_least: 1MB}}",
        facts(classification=Clearance.SECRET, size=2_000_000),
        True,
    ),
    (
        "{classification: {at_least: secret}, size: {at_least: 1MB}}",
        facts(classification=Clearance.SECRET, size=10),
        False,
    ),
]


@pytest.mark.parametrize(("condition", "message", "matches"), CONDITION_TABLE)
def test_condition(
    demo_snapshot: DirectorySnapshot, condition: str, message: MessageFacts, matches: bool
) -> None:
    policy = make_policy(
        f"""
        - id: cond
          description: condition under test
          conditions: {condition}
          effect: deny
          reason: {{en: Refused., ar: مرفوض.}}
        - id: ministries
          description: everything else between ministries
          sender: {{kind: ministry}}
          effect: allow
        """,
        snapshot=demo_snapshot,
    )
    decision = policy.decide(MOH_MIN, MOF_MIN, message)
    assert decision.rule_id == ("cond" if matches else "ministries")
    assert decision.allowed is not matches
    assert decision.final


AUDIT_RULES = """
- id: watch-secret
  description: watch secret mail before enforcing
  mode: audit
  conditions: {classification: {at_least: secret}}
  effect: deny
  reason: {en: Secret mail will need approval., ar: ستحتاج المراسلات السرية إلى موافقة.}
- id: watch-all
  description: watch everything
  mode: audit
  effect: deny
  reason: {en: Watched., ar: مراقب.}
- id: ministries
  description: ministries exchange freely
  sender: {kind: ministry}
  recipient: {kind: ministry}
  effect: allow
"""


def test_audit_rule_logs_and_lets_pass(demo_snapshot: DirectorySnapshot) -> None:
    policy = make_policy(AUDIT_RULES, snapshot=demo_snapshot)
    decision = policy.decide(MOH_MIN, MOF_MIN, facts(classification=Clearance.SECRET))
    assert decision.allowed and decision.rule_id == "ministries"
    assert decision.mode is Mode.ENFORCE
    assert [h.rule_id for h in decision.audit_hits] == ["watch-secret", "watch-all"]
    assert decision.audit_hits[0].reason.en == "Secret mail will need approval."
    internal = policy.decide(MOH_MIN, MOF_MIN, facts())
    assert [h.rule_id for h in internal.audit_hits] == ["watch-all"]


def test_audit_hits_are_reported_with_the_default_too(demo_snapshot: DirectorySnapshot) -> None:
    policy = make_policy(AUDIT_RULES, snapshot=demo_snapshot)
    decision = policy.decide("planning.director@moh.gov.example", MOF_CLERK, facts())
    assert (decision.allowed, decision.rule_id) == (False, "default")
    assert [h.rule_id for h in decision.audit_hits] == ["watch-all"]


# --- RCPT time: facts missing -------------------------------------------------

RCPT_RULES = """
- id: no-exe
  description: no executables
  conditions: {attachments: {any_of: [exe]}}
  effect: deny
  reason: {en: No executables., ar: لا ملفات تنفيذية.}
- id: rate
  description: rate limit
  conditions: {rate_per_hour: {at_least: 100}}
  effect: deny
  reason: {en: Slow down., ar: تمهل.}
- id: ministries-small
  description: ministries, small messages only
  sender: {kind: ministry}
  recipient: {kind: ministry}
  conditions: {size: {at_most: 1MB}}
  effect: allow
- id: to-region
  description: nothing to the region
  recipient: {peer: region}
  effect: deny
  reason: {en: Not to the region., ar: ليس إلى الإقليم.}
"""


def test_rcpt_allow_with_unknown_conditions_is_provisional(
    demo_snapshot: DirectorySnapshot,
) -> None:
    policy = make_policy(RCPT_RULES, snapshot=demo_snapshot)
    at_rcpt = policy.decide(MOH_MIN, MOF_MIN, MessageFacts(sender_messages_last_hour=3))
    assert at_rcpt.allowed and at_rcpt.rule_id == "ministries-small"
    assert at_rcpt.final is False
    at_end = policy.decide(MOH_MIN, MOF_MIN, facts(size=5_000_000))
    assert (at_end.allowed, at_end.rule_id, at_end.final) == (False, "default", True)


def test_rcpt_deny_with_unknown_conditions_is_skipped_then_rechecked(
    demo_snapshot: DirectorySnapshot,
) -> None:
    policy = make_policy(RCPT_RULES, snapshot=demo_snapshot)
    at_rcpt = policy.decide(MOH_MIN, MOF_MIN, MessageFacts(sender_messages_last_hour=3, size=10))
    assert at_rcpt.allowed and at_rcpt.final is False  # no-exe was skipped
    at_end = policy.decide(MOH_MIN, MOF_MIN, facts(attachments=att("x.exe"), size=10))
    assert (at_end.allowed, at_end.rule_id, at_end.final) == (False, "no-exe", True)


def test_rcpt_known_fact_decides_at_rcpt(demo_snapshot: DirectorySnapshot) -> None:
    policy = make_policy(RCPT_RULES, snapshot=demo_snapshot)
    decision = policy.decide(MOH_MIN, MOF_MIN, MessageFacts(sender_messages_last_hour=100))
    assert (decision.allowed, decision.rule_id, decision.final) == (False, "rate", True)


def test_rcpt_unconditional_deny_is_final(demo_snapshot: DirectorySnapshot) -> None:
    policy = make_policy(RCPT_RULES, snapshot=demo_snapshot)
    decision = policy.decide(MOH_MIN, REGISTRY)
    assert (decision.allowed, decision.rule_id, decision.final) == (False, "to-region", True)


def test_known_false_condition_outweighs_unknown_ones(demo_snapshot: DirectorySnapshot) -> None:
    policy = make_policy(
        """
        - id: secret-exe
          description: secret executables
          conditions: {classification: {at_least: secret}, attachments: {any_of: [exe]}}
          effect: deny
          reason: {en: No., ar: لا.}
        - id: all
          description: all ministries
          sender: {kind: ministry}
          effect: allow
        """,
        snapshot=demo_snapshot,
    )
    decision = policy.decide(MOH_MIN, MOF_MIN, MessageFacts(classification=Clearance.PUBLIC))
    assert decision.allowed and decision.final  # the deny rule cannot match


def test_full_facts_give_final_decisions(demo_snapshot: DirectorySnapshot) -> None:
    policy = make_policy(RCPT_RULES, snapshot=demo_snapshot)
    assert policy.decide(MOH_MIN, MOF_MIN, facts()).final


def test_default_allow_after_skipped_deny_is_provisional(demo_snapshot: DirectorySnapshot) -> None:
    policy = make_policy(
        """
        - id: no-exe
          description: no executables
          conditions: {attachments: {any_of: [exe]}}
          effect: deny
          reason: {en: No executables., ar: لا ملفات تنفيذية.}
        """,
        default="allow",
        snapshot=demo_snapshot,
    )
    decision = policy.decide(MOH_MIN, MOF_MIN, MessageFacts(classification=Clearance.PUBLIC))
    assert (decision.allowed, decision.rule_id, decision.final) == (True, "default", False)


# --- built-in clearance rule --------------------------------------------------


def test_clearance_rule_checks_recipient_and_sender(demo_snapshot: DirectorySnapshot) -> None:
    policy = make_policy("- {id: all, description: all, effect: allow}", snapshot=demo_snapshot)
    to_clerk = policy.decide(MOH_MIN, MOF_CLERK, facts(classification=Clearance.CONFIDENTIAL))
    assert (to_clerk.allowed, to_clerk.rule_id, to_clerk.effect) == (
        False,
        "clearance",
        Effect.DENY,
    )
    assert "recipient" in to_clerk.reason.en and "confidential" in to_clerk.reason.en
    assert "للمستلم" in to_clerk.reason.ar
    from_clerk = policy.decide(PLN_CLERK, MOH_MIN, facts(classification=Clearance.INTERNAL))
    assert from_clerk.rule_id == "clearance" and "sender" in from_clerk.reason.en
    assert policy.decide(MOH_MIN, MOF_CLERK, facts(classification=Clearance.INTERNAL)).allowed


def test_clearance_rule_comes_before_rules_and_skips_remote_parties(
    demo_snapshot: DirectorySnapshot,
) -> None:
    policy = make_policy("- {id: all, description: all, effect: allow}", snapshot=demo_snapshot)
    decision = policy.decide(MOH_MIN, REGISTRY, facts(classification=Clearance.SECRET))
    assert decision.allowed and decision.rule_id == "all"


def test_clearance_unknown_at_rcpt_makes_allow_provisional(
    demo_snapshot: DirectorySnapshot,
) -> None:
    policy = make_policy("- {id: all, description: all, effect: allow}", snapshot=demo_snapshot)
    assert policy.decide(MOH_MIN, MOF_CLERK).final is False  # clerk: internal
    assert policy.decide(MOH_MIN, MOF_MIN).final is True  # both cleared for secret


# --- parties ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sender", "recipient", "rule"),
    [
        (MOH_MIN, "nobody@moh.gov.example", "unknown-recipient"),
        (MOH_MIN, "someone@example.com", "unknown-recipient"),
        (MOH_MIN, "not-an-address", "unknown-recipient"),
        (MOH_MIN, "former@moh.gov.example", "inactive-recipient"),
        ("someone@example.com", MOH_MIN, "unknown-sender"),
        ("former@moh.gov.example", MOH_MIN, "inactive-sender"),
    ],
)
def test_unknown_and_inactive_parties(
    demo_snapshot: DirectorySnapshot, sender: str, recipient: str, rule: str
) -> None:
    policy = make_policy("- {id: all, description: all, effect: allow}", snapshot=demo_snapshot)
    decision = policy.decide(sender, recipient)
    assert (decision.allowed, decision.rule_id, decision.final) == (False, rule, True)
    assert decision.reason.en and decision.reason.ar


def test_any_address_in_a_federated_domain_is_a_party(demo_snapshot: DirectorySnapshot) -> None:
    policy = make_policy("- {id: all, description: all, effect: allow}", snapshot=demo_snapshot)
    assert policy.decide(MOH_MIN, "Anyone@Region.Gov.Example").allowed
    party = policy.resolve("anyone@region.gov.example")
    assert party is not None and party.peer == "region" and party.employee is None

"""Every selector key and relation, table-driven: one allow rule, default deny."""

from __future__ import annotations

import pytest

from policies.directory import DirectorySnapshot
from testkit.policy import make_policy

MOH_MIN = "minister@moh.gov.example"
MOH_CLERK = "clerk@moh.gov.example"
MOH_REG = "registrar@moh.gov.example"
PLN_CLERK = "planning.clerk@moh.gov.example"
PLN_DIR = "planning.director@moh.gov.example"
MOF_MIN = "minister@mof.gov.example"
MOF_CLERK = "clerk@mof.gov.example"
MOF_REG = "registrar@mof.gov.example"
BUD_DIR = "budget.director@mof.gov.example"
BSR_CLERK = "clerk@gov-bsr.gov.example"
CAB_DIR = "director@cab.gov.example"
REGISTRY = "registry@region.gov.example"
REMOTE = "minister@region.gov.example"

# (selector side, selector, sender, recipient, allowed)
SELECTOR_TABLE = [
    # agency code: that agency only
    ("sender", "{agency: MOH}", MOH_MIN, MOF_MIN, True),
    ("sender", "{agency: MOH}", PLN_CLERK, MOF_MIN, False),
    ("recipient", "{agency: [MOF, CAB]}", MOH_MIN, CAB_DIR, True),
    ("recipient", "{agency: [MOF, CAB]}", MOH_MIN, BUD_DIR, False),
    # agency subtree
    ("sender", "{agency: MOH/**}", PLN_CLERK, MOF_MIN, True),
    ("sender", "{agency: MOH/**}", MOH_MIN, MOF_MIN, True),
    ("sender", "{agency: MOH/**}", MOF_MIN, MOH_MIN, False),
    ("recipient", "{agency: MOF/**}", MOH_MIN, BUD_DIR, True),
    # agency kind
    ("sender", "{kind: directorate}", PLN_DIR, MOF_MIN, True),
    ("sender", "{kind: directorate}", MOH_MIN, MOF_MIN, False),
    ("recipient", "{kind: [governorate, entity]}", MOH_MIN, BSR_CLERK, True),
    ("recipient", "{kind: [governorate, entity]}", MOH_MIN, CAB_DIR, True),
    ("recipient", "{kind: [governorate, entity]}", MOH_MIN, MOF_MIN, False),
    # role
    ("sender", "{role: registrar}", MOF_REG, MOH_MIN, True),
    ("sender", "{role: registrar}", MOF_CLERK, MOH_MIN, False),
    ("recipient", "{role: [minister, director]}", MOF_CLERK, BUD_DIR, True),
    # clearance at least / at most
    ("sender", "{clearance: {at_least: confidential}}", MOH_REG, MOF_MIN, True),
    ("sender", "{clearance: {at_least: confidential}}", MOH_CLERK, MOF_MIN, False),
    ("recipient", "{clearance: {at_most: internal}}", MOH_MIN, MOF_CLERK, True),
    ("recipient", "{clearance: {at_most: internal}}", MOH_MIN, MOF_MIN, False),
    (
        "recipient",
        "{clearance: {at_least: internal, at_most: confidential}}",
        MOH_MIN,
        MOF_REG,
        True,
    ),
    (
        "recipient",
        "{clearance: {at_least: internal, at_most: confidential}}",
        MOH_MIN,
        PLN_CLERK,
        False,
    ),
    # exact address (case-insensitive)
    ("sender", "{address: clerk@mof.gov.example}", MOF_CLERK, MOH_MIN, True),
    ("sender", "{address: Clerk@MOF.gov.example}", "CLERK@mof.gov.example", MOH_MIN, True),
    ("sender", "{address: clerk@mof.gov.example}", MOH_CLERK, MOH_MIN, False),
    # address pattern (glob)
    ("sender", "{address_pattern: '*@mof.gov.example'}", BUD_DIR, MOH_MIN, True),
    ("sender", "{address_pattern: '*@mof.gov.example'}", MOH_CLERK, MOF_MIN, False),
    ("sender", "{address_pattern: 'planning.*@moh.gov.example'}", PLN_CLERK, MOF_MIN, True),
    ("sender", "{address_pattern: 'planning.*@moh.gov.example'}", MOH_CLERK, MOF_MIN, False),
    (
        "recipient",
        "{address_pattern: ['registrar@*', '*@cab.gov.example']}",
        MOH_MIN,
        MOF_REG,
        True,
    ),
    (
        "recipient",
        "{address_pattern: ['registrar@*', '*@cab.gov.example']}",
        MOH_MIN,
        CAB_DIR,
        True,
    ),
    (
        "recipient",
        "{address_pattern: ['registrar@*', '*@cab.gov.example']}",
        MOH_MIN,
        MOF_MIN,
        False,
    ),
    ("recipient", "{address_pattern: 'registr[ay]*@*.gov.example'}", MOH_MIN, REGISTRY, True),
    # federated peer domain
    ("recipient", "{peer: region}", MOH_MIN, REGISTRY, True),
    ("recipient", "{peer: region}", MOH_MIN, MOF_MIN, False),
    ("sender", "{peer: region}", REMOTE, MOH_MIN, True),
    ("sender", "{peer: region}", MOF_MIN, MOH_MIN, False),
    # local true / false
    ("recipient", "{local: false}", MOH_MIN, REGISTRY, True),
    ("recipient", "{local: false}", MOH_MIN, MOF_MIN, False),
    ("recipient", "{local: true}", MOH_MIN, MOF_MIN, True),
    ("recipient", "{local: true}", MOH_MIN, REGISTRY, False),
    # a selector on directory attributes never matches a remote party
    ("recipient", "{clearance: {at_least: public}}", MOH_MIN, REGISTRY, False),
    ("recipient", "{role: minister}", MOH_MIN, REMOTE, False),
    # keys combine with AND, list entries with OR
    ("sender", "{agency: MOH/**, role: clerk}", PLN_CLERK, MOF_MIN, True),
    ("sender", "{agency: MOH/**, role: clerk}", PLN_DIR, MOF_MIN, False),
    ("sender", "{agency: MOH/**, role: clerk}", MOF_CLERK, MOH_MIN, False),
    ("sender", "{agency: MOH/**, kind: directorate}", PLN_DIR, MOF_MIN, True),
    ("sender", "{agency: MOH/**, kind: directorate}", MOH_MIN, MOF_MIN, False),
]


@pytest.mark.parametrize(("side", "selector", "sender", "recipient", "allowed"), SELECTOR_TABLE)
def test_selector(
    demo_snapshot: DirectorySnapshot,
    side: str,
    selector: str,
    sender: str,
    recipient: str,
    allowed: bool,
) -> None:
    policy = make_policy(
        f"""
        - id: r1
          description: selector under test
          {side}: {selector}
          effect: allow
        """,
        snapshot=demo_snapshot,
    )
    decision = policy.decide(sender, recipient)
    assert decision.allowed is allowed
    assert decision.rule_id == ("r1" if allowed else "default")


# (relation, sender, recipient, allowed)
RELATION_TABLE = [
    ("same-agency", MOH_CLERK, MOH_MIN, True),
    ("same-agency", MOH_MIN, PLN_CLERK, False),
    ("same-subtree", MOH_MIN, PLN_CLERK, True),
    ("same-subtree", MOH_MIN, MOH_CLERK, True),
    ("same-subtree", PLN_CLERK, MOH_MIN, False),
    ("same-tree", PLN_CLERK, MOH_MIN, True),
    ("same-tree", MOH_MIN, PLN_CLERK, True),
    ("same-tree", PLN_DIR, BUD_DIR, False),
    ("same-tree", MOH_MIN, MOF_MIN, False),
    ("parent", PLN_CLERK, MOH_MIN, True),
    ("parent", MOH_MIN, PLN_CLERK, False),
    ("parent", MOH_MIN, MOH_CLERK, False),
    ("child", MOH_MIN, PLN_CLERK, True),
    ("child", PLN_CLERK, MOH_MIN, False),
    ("chain-of-command", PLN_CLERK, MOH_MIN, True),
    ("chain-of-command", MOH_MIN, PLN_DIR, True),
    ("chain-of-command", MOH_CLERK, MOH_MIN, False),
    ("chain-of-command", PLN_DIR, MOF_MIN, False),
    ("chain-of-command", PLN_DIR, BUD_DIR, False),
    ("ancestor", PLN_CLERK, MOH_MIN, True),
    ("ancestor", MOH_MIN, PLN_CLERK, False),
    ("ancestor", BUD_DIR, MOH_MIN, False),
    # relations need two directory employees
    ("same-tree", MOH_MIN, REGISTRY, False),
    ("same-agency", REMOTE, MOH_MIN, False),
]


@pytest.mark.parametrize(("relation", "sender", "recipient", "allowed"), RELATION_TABLE)
def test_relation(
    demo_snapshot: DirectorySnapshot, relation: str, sender: str, recipient: str, allowed: bool
) -> None:
    policy = make_policy(
        f"""
        - id: rel
          description: relation under test
          recipient: {{relation: {relation}}}
          effect: allow
        """,
        snapshot=demo_snapshot,
    )
    assert policy.decide(sender, recipient).allowed is allowed


def test_relation_list_is_any_of(demo_snapshot: DirectorySnapshot) -> None:
    policy = make_policy(
        """
        - id: rel
          description: up or down the tree
          recipient: {relation: [parent, child]}
          effect: allow
        """,
        snapshot=demo_snapshot,
    )
    assert policy.decide(PLN_CLERK, MOH_MIN).allowed
    assert policy.decide(MOH_MIN, PLN_CLERK).allowed
    assert not policy.decide(MOH_CLERK, MOH_MIN).allowed


def test_empty_policy_denies_everything(demo_snapshot: DirectorySnapshot) -> None:
    policy = make_policy("", snapshot=demo_snapshot)
    decision = policy.decide(MOH_MIN, MOF_MIN)
    assert (decision.allowed, decision.rule_id) == (False, "default")
    assert decision.reason.en and decision.reason.ar


def test_default_allow_with_reason(demo_snapshot: DirectorySnapshot) -> None:
    policy = make_policy(
        """
        - id: no-region
          description: nothing to the region
          recipient: {peer: region}
          effect: deny
          reason: {en: No., ar: لا.}
        """,
        default="{effect: allow, reason: {en: Open network., ar: شبكة مفتوحة.}}",
        snapshot=demo_snapshot,
    )
    assert policy.decide(PLN_DIR, BUD_DIR).allowed
    assert policy.decide(PLN_DIR, BUD_DIR).reason.en == "Open network."
    denied = policy.decide(PLN_DIR, REGISTRY)
    assert (denied.allowed, denied.rule_id, denied.reason.ar) == (False, "no-region", "لا.")


def test_first_match_decides(demo_snapshot: DirectorySnapshot) -> None:
    policy = make_policy(
        """
        - id: deny-clerks
          description: clerks may not write to other ministries
          sender: {role: clerk}
          recipient: {kind: ministry}
          effect: deny
          reason: {en: Clerks write through the registry., ar: يكتب الموظفون عبر الديوان.}
        - id: ministries
          description: ministries exchange freely
          sender: {kind: ministry}
          recipient: {kind: ministry}
          effect: allow
        """,
        snapshot=demo_snapshot,
    )
    assert policy.decide(MOH_MIN, MOF_MIN).rule_id == "ministries"
    clerk = policy.decide(MOH_CLERK, MOF_MIN)
    assert (clerk.allowed, clerk.rule_id) == (False, "deny-clerks")
    assert clerk.reason.en == "Clerks write through the registry."

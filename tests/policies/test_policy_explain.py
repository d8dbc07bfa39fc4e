"""explain(): the decision with the trace of every rule, as text and as JSON."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from policies.decision import MessageFacts, StepOutcome
from policies.directory import Clearance, DirectorySnapshot
from policies.engine import Policy
from policies.explain import explain
from policies.loader import check_policy
from policies.render import explanation_json, explanation_text, render_json, render_text
from testkit.policy import FEDERATION, REPO


def test_trace_lists_every_rule(shipped_policy: Policy) -> None:
    e = explain(
        shipped_policy, "planning.director@moh.gov.example", "budget.director@mof.gov.example"
    )
    assert not e.decision.allowed and e.decision.rule_id == "default"
    ids = [s.rule_id for s in e.trace]
    assert ids == ["clearance", *[r.id for r in shipped_policy.rules], "default"]
    by_id = {s.rule_id: s for s in e.trace}
    assert by_id["chain-of-command"].outcome is StepOutcome.NO_MATCH
    assert "MOF-BUD is not ancestor|same-subtree" in by_id["chain-of-command"].detail
    assert by_id["no-executables"].outcome is StepOutcome.UNDETERMINED
    assert by_id["ministries-to-ministries"].detail.startswith(
        "sender agency MOH-PLN (directorate) is not kind ministry"
    )


def test_trace_marks_the_deciding_rule_and_the_rest_not_reached(shipped_policy: Policy) -> None:
    facts = MessageFacts(
        classification=Clearance.INTERNAL,
        attachments=(),
        size=10,
        recipient_count=30,
        sender_messages_last_hour=0,
    )
    e = explain(shipped_policy, "minister@moh.gov.example", "clerk@moh.gov.example", facts)
    outcomes = {s.rule_id: s.outcome for s in e.trace}
    assert outcomes["clearance"] is StepOutcome.PASSED
    assert outcomes["audit-wide-distribution"] is StepOutcome.AUDIT_HIT
    assert outcomes["same-agency"] is StepOutcome.DECIDED
    assert outcomes["cabinet-to-ministries"] is StepOutcome.NOT_REACHED
    assert "default" not in outcomes


def test_text_and_json_renderings(shipped_policy: Policy) -> None:
    e = explain(
        shipped_policy,
        "minister@moh.gov.example",
        "clerk@mof.gov.example",
        MessageFacts(classification=Clearance.SECRET),
    )
    text = explanation_text(e)
    assert "DENY by rule clearance" in text
    assert "to:   clerk@mof.gov.example (MOF, clerk, internal)" in text
    assert "facts: classification=secret" in text
    assert "reason (ar): " in text and "=> clearance: " in text
    assert render_text(e) == text
    data = explanation_json(e)
    assert data["decision"] == e.decision.to_dict() and render_json(e) == data
    assert json.loads(json.dumps(data, ensure_ascii=False))["decision"]["rule"] == "clearance"


def test_unknown_party_is_explained(shipped_policy: Policy) -> None:
    e = explain(shipped_policy, "minister@moh.gov.example", "ghost@example.com")
    assert e.recipient_party == "ghost@example.com (unknown)"
    assert e.trace[0].rule_id == "unknown-recipient"
    assert all(s.outcome is StepOutcome.NOT_REACHED for s in e.trace[1:])


def yaml_blocks(path: Path) -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", path.read_text(encoding="utf-8"), re.S)


@pytest.mark.parametrize(
    "block", [b for b in yaml_blocks(REPO / "docs" / "POLICIES.md") if b.startswith("version: 1")]
)
def test_policies_in_the_documentation_are_valid(
    demo_snapshot: DirectorySnapshot, block: str
) -> None:
    result = check_policy(block, demo_snapshot, FEDERATION, name="POLICIES.md")
    assert result.ok, "\n".join(map(str, result.problems))

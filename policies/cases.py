"""Policy test tables: a YAML list of expected decisions, run against a Policy.

Owns: the cases file format, running it, and the `CaseReport` of mismatches.
Must not: read anything but the one cases file, or change the policy.

Format (one mapping per case; only from, to and expect are required):

    - name: ministries exchange freely      # optional label
      from: minister@moh.gov.example
      to: minister@mof.gov.example
      classification: secret                # facts; omitted ones are unknown
      attachments: [report.pdf, {name: a.bin, type: application/octet-stream}]
      size: 2MB
      recipients: 3
      rate: 12                              # sender's messages in the last hour
      expect: allow                         # allow | deny
      rule: ministries-to-ministries        # optional: the deciding rule id
      final: true                           # optional
      audit: [audit-wide-distribution]      # optional: exact audit hits
"""

from __future__ import annotations

from dataclasses import dataclass

from yaml.nodes import Node, ScalarNode

from policies.decision import Attachment, Decision, MessageFacts
from policies.directory import Clearance
from policies.engine import Policy
from policies.loader import PolicySource, read_source
from policies.problems import PolicyError, Problem, sort_problems
from policies.yamlread import NodeReader, compose_strict, line_of

CASE_KEYS = (
    "name",
    "from",
    "to",
    "classification",
    "attachments",
    "size",
    "recipients",
    "rate",
    "expect",
    "rule",
    "final",
    "audit",
)
ATTACHMENT_KEYS = ("name", "type")


@dataclass(frozen=True, slots=True)
class Case:
    name: str
    line: int
    sender: str
    recipient: str
    facts: MessageFacts
    expect_allowed: bool
    expect_rule: str | None = None
    expect_final: bool | None = None
    expect_audit: tuple[str, ...] | None = None

    @property
    def expected(self) -> str:
        text = "allow" if self.expect_allowed else "deny"
        if self.expect_rule:
            text += f" by rule {self.expect_rule}"
        if self.expect_final is not None:
            text += " (final)" if self.expect_final else " (provisional)"
        if self.expect_audit is not None:
            text += f", audit hits [{', '.join(self.expect_audit)}]"
        return text


@dataclass(frozen=True, slots=True)
class CaseResult:
    case: Case
    decision: Decision
    mismatches: tuple[str, ...]  # empty when the case passed

    @property
    def passed(self) -> bool:
        return not self.mismatches

    @property
    def got(self) -> str:
        d = self.decision
        text = f"{'allow' if d.allowed else 'deny'} by rule {d.rule_id}"
        text += " (final)" if d.final else " (provisional)"
        if d.audit_hits:
            text += f", audit hits [{', '.join(h.rule_id for h in d.audit_hits)}]"
        return text


@dataclass(frozen=True, slots=True)
class CaseReport:
    cases_file: str
    policy_name: str
    policy_hash: str
    results: tuple[CaseResult, ...]
    problems: tuple[Problem, ...] = ()  # mistakes in the cases file itself

    @property
    def failures(self) -> tuple[CaseResult, ...]:
        return tuple(r for r in self.results if not r.passed)

    @property
    def ok(self) -> bool:
        return not self.problems and not self.failures


def parse_cases(source: PolicySource, name: str | None = None) -> tuple[list[Case], list[Problem]]:
    """Read a cases file; every malformed case is reported with its line."""
    try:
        label, _, text = read_source(source, name)
    except PolicyError as exc:
        return [], list(exc.problems)
    root, problems = compose_strict(text, label)
    if root is None:
        if not problems:
            problems.append(Problem(label, None, None, "the cases file is empty"))
        return [], problems
    reader = NodeReader(label)
    items = reader.sequence(root, "cases file") or []
    cases = [case for item in items if (case := _case(reader, item)) is not None]
    return cases, list(sort_problems(reader.problems))


def _case(r: NodeReader, node: Node) -> Case | None:
    keys = r.mapping(node, "case", CASE_KEYS, required=("from", "to", "expect"))
    if keys is None:
        return None
    line = line_of(node)
    label = f"line {line}"
    if "name" in keys:
        label = r.text(keys["name"][1], "name") or label
    values: dict[str, str | None] = {}
    for key in ("from", "to", "rule"):
        values[key] = r.text(keys[key][1], key) if key in keys else None
    ok = None not in (values["from"], values["to"]) and not ("rule" in keys and not values["rule"])
    expect_allowed = False
    if "expect" in keys:
        word = r.text(keys["expect"][1], "expect")
        if word in ("allow", "deny"):
            expect_allowed = word == "allow"
        else:
            ok = False
            if word is not None:
                r.problem(keys["expect"][1], None, f"expect must be allow or deny, not {word!r}")
    classification = None
    if "classification" in keys:
        word = r.text(keys["classification"][1], "classification")
        try:
            classification = Clearance.parse(word) if word is not None else None
        except ValueError as exc:
            r.problem(keys["classification"][1], None, str(exc))
        ok = ok and classification is not None
    attachments = None
    if "attachments" in keys:
        attachments = _attachments(r, keys["attachments"][1])
        ok = ok and attachments is not None
    counts: dict[str, int | None] = {}
    for key in ("size", "recipients", "rate"):
        if key in keys:
            counts[key] = r.count(keys[key][1], key, units=key == "size")
            ok = ok and counts[key] is not None
    final = None
    if "final" in keys:
        final = r.boolean(keys["final"][1], "final")
        ok = ok and final is not None
    audit = None
    if "audit" in keys:
        audit_node = keys["audit"][1]
        is_empty_list = not isinstance(audit_node, ScalarNode) and not audit_node.value
        audit = () if is_empty_list else tuple(w for w, _ in r.texts(audit_node, "audit"))
    if not ok:
        return None
    assert values["from"] is not None and values["to"] is not None
    facts = MessageFacts(
        classification=classification,
        attachments=attachments,
        size=counts.get("size"),
        recipient_count=counts.get("recipients"),
        sender_messages_last_hour=counts.get("rate"),
    )
    return Case(
        name=label,
        line=line,
        sender=values["from"],
        recipient=values["to"],
        facts=facts,
        expect_allowed=expect_allowed,
        expect_rule=values["rule"],
        expect_final=final,
        expect_audit=audit,
    )


def _attachments(r: NodeReader, node: Node) -> tuple[Attachment, ...] | None:
    items = r.sequence(node, "attachments")
    if items is None:
        return None
    out: list[Attachment] = []
    for item in items:
        if isinstance(item, ScalarNode):
            name = r.text(item, "attachment name")
            if name is None:
                return None
            out.append(Attachment(name=name))
            continue
        keys = r.mapping(item, "attachment", ATTACHMENT_KEYS)
        if not keys:
            if keys is not None:
                r.problem(item, None, "attachment: give name and/or type")
            return None
        name = r.text(keys["name"][1], "attachment name") if "name" in keys else ""
        mime = r.text(keys["type"][1], "attachment type") if "type" in keys else ""
        if name is None or mime is None:
            return None
        out.append(Attachment(name=name, mime_type=mime))
    return tuple(out)


def check_case(policy: Policy, case: Case) -> CaseResult:
    decision = policy.decide(case.sender, case.recipient, case.facts)
    mismatches: list[str] = []
    if decision.allowed != case.expect_allowed:
        mismatches.append("effect")
    if case.expect_rule is not None and decision.rule_id != case.expect_rule:
        mismatches.append("rule")
    if case.expect_final is not None and decision.final != case.expect_final:
        mismatches.append("final")
    if case.expect_audit is not None and case.expect_audit != tuple(
        h.rule_id for h in decision.audit_hits
    ):
        mismatches.append("audit")
    return CaseResult(case, decision, tuple(mismatches))


def run_cases(policy: Policy, cases: PolicySource, *, name: str | None = None) -> CaseReport:
    """Run a cases file (Path, or YAML text) against `policy`."""
    parsed, problems = parse_cases(cases, name)
    label = (
        problems[0].file
        if problems
        else (name or (str(cases) if not isinstance(cases, (str, bytes)) else "<text>"))
    )
    results = tuple(check_case(policy, case) for case in parsed)
    return CaseReport(
        cases_file=label,
        policy_name=policy.source_name,
        policy_hash=policy.source_hash,
        results=results,
        problems=tuple(problems),
    )

"""Plain-text and JSON-able renderings of explanations, case reports and problems.

Owns: how policy results look to a person on a terminal and to a machine
(`--json`). Must not: decide, read files or print; callers write the output.
"""

from __future__ import annotations

from collections.abc import Sequence

from policies.cases import CaseReport
from policies.decision import Decision, StepOutcome
from policies.explain import Explanation
from policies.problems import Problem, Severity

_MARK = {
    StepOutcome.DECIDED: "=>",
    StepOutcome.AUDIT_HIT: "!!",
    StepOutcome.NO_MATCH: "--",
    StepOutcome.UNDETERMINED: "??",
    StepOutcome.PASSED: "ok",
    StepOutcome.NOT_REACHED: "  ",
}


def decision_text(decision: Decision) -> str:
    verdict = "ALLOW" if decision.allowed else "DENY"
    extra = "" if decision.final else " (provisional: re-checked with the full message)"
    lines = [
        f"{verdict} by rule {decision.rule_id}{extra}",
        f"  reason (en): {decision.reason.en}",
        f"  reason (ar): {decision.reason.ar}",
    ]
    for hit in decision.audit_hits:
        lines.append(f"  audit: rule {hit.rule_id} would have denied: {hit.reason.en}")
    return "\n".join(lines)


def explanation_text(explanation: Explanation) -> str:
    e = explanation
    facts = {k: v for k, v in e.facts.to_dict().items() if v is not None}
    known = ", ".join(f"{k}={v}" for k, v in facts.items()) or "none (RCPT time)"
    lines = [
        f"from: {e.sender_party}",
        f"to:   {e.recipient_party}",
        f"facts: {known}",
        f"policy: {e.policy_name} sha256:{e.policy_hash[:16]}",
        "",
        decision_text(e.decision),
        "",
        "trace:",
    ]
    for step in e.trace:
        where = f" (line {step.line})" if step.line is not None else ""
        lines.append(f"  {_MARK[step.outcome]} {step.rule_id}{where}: {step.detail}")
    return "\n".join(lines)


def explanation_json(explanation: Explanation) -> dict[str, object]:
    e = explanation
    return {
        "from": e.sender,
        "to": e.recipient,
        "sender": e.sender_party,
        "recipient": e.recipient_party,
        "facts": e.facts.to_dict(),
        "policy": {"file": e.policy_name, "sha256": e.policy_hash},
        "decision": e.decision.to_dict(),
        "trace": [step.to_dict() for step in e.trace],
    }


def case_report_text(report: CaseReport) -> str:
    total, failed = len(report.results), len(report.failures)
    lines = [str(p) for p in report.problems]
    for result in report.failures:
        case = result.case
        lines += [
            f"FAIL {report.cases_file}:{case.line}: {case.name}",
            f"  {case.sender} -> {case.recipient}",
            f"  expected: {case.expected}",
            f"  got:      {result.got}",
            f"  reason:   {result.decision.reason.en}",
        ]
    summary = f"{total - failed} of {total} cases passed"
    if report.problems:
        summary += f"; {len(report.problems)} problem(s) in the cases file"
    lines.append(summary)
    return "\n".join(lines)


def case_report_json(report: CaseReport) -> dict[str, object]:
    return {
        "ok": report.ok,
        "cases_file": report.cases_file,
        "policy": {"file": report.policy_name, "sha256": report.policy_hash},
        "total": len(report.results),
        "failed": len(report.failures),
        "problems": [p.to_dict() for p in report.problems],
        "failures": [
            {
                "name": r.case.name,
                "line": r.case.line,
                "from": r.case.sender,
                "to": r.case.recipient,
                "expected": r.case.expected,
                "got": r.got,
                "mismatches": list(r.mismatches),
                "decision": r.decision.to_dict(),
            }
            for r in report.failures
        ],
    }


def problems_text(problems: Sequence[Problem]) -> str:
    errors = sum(1 for p in problems if p.severity is Severity.ERROR)
    lines = [str(p) for p in problems]
    lines.append(f"{errors} error(s), {len(problems) - errors} warning(s)")
    return "\n".join(lines)


def problems_json(problems: Sequence[Problem]) -> list[dict[str, object]]:
    return [p.to_dict() for p in problems]


def render_text(item: Explanation | CaseReport | Decision | Sequence[Problem]) -> str:
    """Text for any policy result (what `barid policy ...` prints)."""
    if isinstance(item, Explanation):
        return explanation_text(item)
    if isinstance(item, CaseReport):
        return case_report_text(item)
    if isinstance(item, Decision):
        return decision_text(item)
    return problems_text(item)


def render_json(item: Explanation | CaseReport | Decision | Sequence[Problem]) -> object:
    """JSON-able value for any policy result (what `--json` prints)."""
    if isinstance(item, Explanation):
        return explanation_json(item)
    if isinstance(item, CaseReport):
        return case_report_json(item)
    if isinstance(item, Decision):
        return item.to_dict()
    return problems_json(item)

"""Policy test tables: the shipped cases, failure reports, malformed case files."""

from __future__ import annotations

import json
from pathlib import Path

from policies.cases import run_cases
from policies.directory import DirectorySnapshot
from policies.engine import Policy
from policies.render import case_report_json, case_report_text, render_json, render_text
from testkit.policy import CASES_FILE, make_policy


def test_shipped_policy_passes_its_cases(shipped_policy: Policy) -> None:
    report = run_cases(shipped_policy, CASES_FILE)
    assert report.ok, case_report_text(report)
    assert len(report.results) >= 30
    assert report.policy_hash == shipped_policy.source_hash


def test_shipped_policy_has_no_warnings(demo_snapshot: DirectorySnapshot) -> None:
    from policies.loader import check_policy
    from testkit.policy import FEDERATION, POLICY_FILE

    result = check_policy(POLICY_FILE, demo_snapshot, FEDERATION)
    assert result.ok and result.problems == ()


CASES = """\
- name: ministries exchange
  from: minister@moh.gov.example
  to: minister@mof.gov.example
  expect: allow
  rule: ministries
- name: wrong expectation                    # F-1
  from: clerk@moh.gov.example
  to: minister@mof.gov.example
  classification: public
  expect: allow
- name: wrong rule                           # F-2
  from: minister@moh.gov.example
  to: minister@mof.gov.example
  classification: secret
  attachments: [a.pdf, {name: b.bin, type: application/pdf}]
  size: 1KB
  recipients: 2
  rate: 1
  expect: allow
  rule: something-else
  final: true
  audit: []
"""


def policy(snapshot: DirectorySnapshot) -> Policy:
    return make_policy(
        """
        - id: ministries
          description: ministers of ministries
          sender: {kind: ministry, role: minister}
          recipient: {kind: ministry}
          effect: allow
        """,
        snapshot=snapshot,
    )


def test_failures_are_reported_with_expected_and_got(
    tmp_path: Path, demo_snapshot: DirectorySnapshot
) -> None:
    path = tmp_path / "cases.yaml"
    path.write_text(CASES, encoding="utf-8")
    report = run_cases(policy(demo_snapshot), path)
    assert not report.ok and len(report.results) == 3
    assert [(r.case.line, r.mismatches) for r in report.failures] == [
        (6, ("effect",)),
        (11, ("rule",)),
    ]
    text = case_report_text(report)
    assert f"FAIL {path}:6: wrong expectation" in text
    assert "expected: allow\n" in text
    assert "got:      deny by rule default (final)" in text
    assert "expected: allow by rule something-else (final), audit hits []" in text
    assert "got:      allow by rule ministries (final)" in text
    assert text.endswith("1 of 3 cases passed")
    data = case_report_json(report)
    assert data["failed"] == 2 and data["ok"] is False
    json.dumps(data, ensure_ascii=False)
    assert render_text(report) == text and render_json(report) == data


def test_malformed_cases_are_reported_with_lines(demo_snapshot: DirectorySnapshot) -> None:
    text = """\
- from: minister@moh.gov.example
  to: minister@mof.gov.example
  expect: maybe
- from: minister@moh.gov.example
  to: minister@mof.gov.example
  classification: ultra
  expect: deny
- to: minister@mof.gov.example
  expect: deny
  colour: red
- from: minister@moh.gov.example
  to: minister@mof.gov.example
  expect: allow
"""
    report = run_cases(policy(demo_snapshot), text, name="cases.yaml")
    assert [(p.line, p.file) for p in report.problems] == [
        (3, "cases.yaml"),
        (6, "cases.yaml"),
        (8, "cases.yaml"),
        (10, "cases.yaml"),
    ]
    assert "missing required key 'from'" in report.problems[2].message
    assert len(report.results) == 1 and not report.ok
    assert "problem(s) in the cases file" in case_report_text(report)

"""Policy texts for the admin API and web admin tests, over the test world of
testkit.admin_use_cases (MOF > MOF-TAX, MOH): a valid policy, the same with a
rule renamed, a broken one (problems on known lines) and a case table with one
wrong expectation."""

from __future__ import annotations

POLICY = """\
version: 1
default:
  effect: deny
  reason: {en: Not allowed., ar: غير مسموح.}
rules:
  - id: finance-to-health
    description: The tax directorate writes to health.
    sender: {agency: MOF-TAX}
    recipient: {agency: MOH}
    effect: allow
"""
CHANGED = POLICY.replace("finance-to-health", "tax-to-health")
BROKEN = ("version: 1\nrules:\n  - id: a\n    sender: {agency: NOPE}\n    effect: allow\n"
          "  - id: a\n    effect: alow\n")  # fmt: skip
CASES = """\
- name: tax writes to health
  from: clerk@tax.mof.gov.example
  to: doctor@moh.gov.example
  expect: allow
- name: wrong expectation
  from: doctor@moh.gov.example
  to: clerk@tax.mof.gov.example
  expect: allow
"""

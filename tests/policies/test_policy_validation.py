"""Validation: every kind of mistake is reported with file, line and rule, all at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from policies.directory import DirectorySnapshot
from policies.loader import check_policy, load_policy
from policies.problems import PolicyError, Problem, Severity
from testkit.policy import FEDERATION, policy_text


def line_with(text: str, marker: str) -> int:
    """1-based line of the only line containing `marker`."""
    hits = [n for n, line in enumerate(text.splitlines(), 1) if marker in line]
    assert len(hits) == 1, (marker, hits)
    return hits[0]


def check_file(tmp_path: Path, snapshot: DirectorySnapshot, text: str) -> list[Problem]:
    path = tmp_path / "policies.yaml"
    path.write_text(text, encoding="utf-8")
    result = check_policy(path, snapshot, FEDERATION)
    assert all(p.file == str(path) for p in result.problems)
    return list(result.problems)


def find(problems: list[Problem], line: int, rule: str | None, words: str) -> Problem:
    for p in problems:
        if p.line == line and p.rule == rule and words in p.message:
            return p
    pytest.fail(
        f"no problem at line {line} rule {rule} with {words!r} in:\n"
        + "\n".join(map(str, problems))
    )


BROKEN = """\
version: 1
rulez: []                                    # M-top-key
rules:
  - id: r1
    description: unknown keys
    sendr: {agency: MOH}                     # M-rule-key
    recipient: {agncy: MOH}                  # M-selector-key
    effect: allow
  - id: r2
    description: unknown directory names
    sender:
      agency: [MOH, MOX/**]                  # M-agency
      role: ministre                         # M-role
    recipient:
      peer: kurdistan                        # M-peer
      address: ghost@moh.gov.example         # M-address
    effect: allow
  - id: r3
    description: bad values
    sender:
      clearance: {at_least: topsecret}       # M-clearance
      kind: department                       # M-kind
      address_pattern: "*@moh[.gov.example"  # M-pattern
    recipient:
      relation: cousin                       # M-relation
      agency: "moh/*"                        # M-bad-agency-syntax
    conditions:
      size: {at_most: lots}                  # M-size
      attachments: {any_of: ["exe file"]}    # M-attachment
    effect: permit                           # M-effect
  - id: r4
    description: bad mode and missing reason
    effect: deny                             # M-noreason
    mode: watch                              # M-mode
  - id: r1                                   # M-duplicate
    description: duplicate id
    effect: allow
  - id: r5                                   # M-reason-ar
    description: reason without Arabic
    effect: deny
    reason: {en: Refused.}
  - id: r6
    description: audit allow makes no sense
    effect: allow
    mode: audit                              # M-audit-allow
  - id: default                              # M-reserved
    description: reserved id
    effect: allow
  - id: r7
    description: remote selector with directory keys
    recipient: {peer: region, role: clerk}   # M-remote-local
    effect: allow
  - id: r8
    description: relation on the sender side
    sender: {relation: same-agency}          # M-sender-relation
    effect: allow
"""


def test_every_mistake_is_reported_with_line_and_rule(
    tmp_path: Path, demo_snapshot: DirectorySnapshot
) -> None:
    problems = check_file(tmp_path, demo_snapshot, BROKEN)
    at = lambda marker: line_with(BROKEN, marker)  # noqa: E731
    find(problems, at("M-top-key"), None, "unknown key 'rulez' (did you mean 'rules'?)")
    find(problems, at("M-rule-key"), "r1", "unknown key 'sendr' (did you mean 'sender'?)")
    find(problems, at("M-selector-key"), "r1", "unknown key 'agncy'")
    find(problems, at("M-agency"), "r2", "unknown agency MOX")
    find(problems, at("M-role"), "r2", "unknown role 'ministre'")
    find(problems, at("M-peer"), "r2", "unknown federated peer 'kurdistan'")
    find(problems, at("M-address"), "r2", "ghost@moh.gov.example is not in the directory")
    find(problems, at("M-clearance"), "r3", "unknown clearance 'topsecret'")
    find(problems, at("M-kind"), "r3", "unknown kind 'department'")
    find(problems, at("M-pattern"), "r3", "unclosed '['")
    find(problems, at("M-relation"), "r3", "unknown relation 'cousin'")
    find(problems, at("M-bad-agency-syntax"), "r3", "malformed agency 'moh/*'")
    find(problems, at("M-size"), "r3", "conditions.size.at_most must be a whole number")
    find(problems, at("M-attachment"), "r3", "malformed attachment type")
    find(problems, at("M-effect"), "r3", "unknown effect 'permit'")
    find(problems, at("M-mode"), "r4", "unknown mode 'watch'")
    find(problems, at("M-noreason") - 2, "r4", "a deny rule needs a reason")
    find(problems, at("M-duplicate"), "r1", "duplicate rule id (first used on line 4)")
    find(problems, at("M-reason-ar") + 3, "r5", "missing required key 'ar'")
    find(problems, at("M-audit-allow"), "r6", "mode audit only applies to deny rules")
    find(problems, at("M-reserved"), "default", "is reserved")
    find(problems, at("M-remote-local"), "r7", "can never match")
    find(problems, at("M-sender-relation"), "r8", "unknown key 'relation'")
    assert all(p.severity is Severity.ERROR for p in problems)
    assert len(problems) == 23, "\n".join(map(str, problems))


def test_problems_render_file_line_and_rule(
    tmp_path: Path, demo_snapshot: DirectorySnapshot
) -> None:
    problems = check_file(tmp_path, demo_snapshot, BROKEN)
    text = str(find(problems, line_with(BROKEN, "M-role"), "r2", "unknown role"))
    assert text.startswith(
        f"{tmp_path / 'policies.yaml'}:{line_with(BROKEN, 'M-role')}: rule 'r2': "
    )
    assert problems == sorted(problems, key=lambda p: (p.line or 0, p.message))


def test_load_policy_raises_with_all_problems(
    tmp_path: Path, demo_snapshot: DirectorySnapshot
) -> None:
    path = tmp_path / "policies.yaml"
    path.write_text(BROKEN, encoding="utf-8")
    with pytest.raises(PolicyError) as caught:
        load_policy(path, demo_snapshot, FEDERATION)
    assert len(caught.value.problems) == 23
    assert "23 problem(s)" in str(caught.value)


SHADOWED = """\
version: 1
rules:
  - id: ministries
    description: ministries exchange
    sender: {kind: ministry}
    recipient: {kind: [ministry, entity]}
    effect: allow
  - id: moh-to-mof                           # S-superset
    description: narrower than the rule above
    sender: {agency: MOH, role: clerk}
    recipient: {agency: MOF, clearance: {at_least: internal}}
    conditions: {classification: {at_most: confidential}}
    effect: deny
    reason: {en: No., ar: لا.}
  - id: conditional
    description: has conditions, so it shadows nothing
    sender: {agency: MOH/**}
    conditions: {size: {at_most: 1MB}}
    effect: allow
  - id: audited
    description: audit rules shadow nothing
    mode: audit
    effect: deny
    reason: {en: Watched., ar: مراقب.}
  - id: moh-tree
    description: reachable
    sender: {agency: MOH/**}
    recipient: {relation: child}
    effect: allow
  - id: moh-parent                           # S-relation
    description: a narrower sender with the same relation
    sender: {agency: MOH-PLN}
    recipient: {relation: child}
    effect: allow
  - id: catch-all
    description: everything else
    effect: allow
  - id: after-all                            # S-catch-all
    description: can never be reached
    sender: {peer: region}
    effect: deny
    reason: {en: No., ar: لا.}
"""


def test_unreachable_rules(tmp_path: Path, demo_snapshot: DirectorySnapshot) -> None:
    problems = check_file(tmp_path, demo_snapshot, SHADOWED)
    find(
        problems,
        line_with(SHADOWED, "S-superset"),
        "moh-to-mof",
        "unreachable: rule 'ministries' (line 3)",
    )
    find(problems, line_with(SHADOWED, "S-relation"), "moh-parent", "unreachable: rule 'moh-tree'")
    find(problems, line_with(SHADOWED, "S-catch-all"), "after-all", "unreachable: rule 'catch-all'")
    assert len(problems) == 3, "\n".join(map(str, problems))


def test_address_patterns_and_addresses_in_shadowing(
    tmp_path: Path, demo_snapshot: DirectorySnapshot
) -> None:
    text = policy_text(
        """
        - id: mof-domain
          description: anyone at MOF
          recipient: {address_pattern: "*@mof.gov.example"}
          effect: allow
        - id: mof-minister
          description: covered by the pattern above
          recipient: {address: minister@mof.gov.example}
          effect: allow
        - id: region-registry
          description: not covered
          recipient: {address: registry@region.gov.example}
          effect: allow
        """
    )
    problems = check_file(tmp_path, demo_snapshot, text)
    assert [(p.rule, p.line) for p in problems] == [("mof-minister", 7)]


def test_warning_does_not_refuse_the_file(tmp_path: Path, demo_snapshot: DirectorySnapshot) -> None:
    text = policy_text(
        """
        - id: nothing
          description: MOH is a ministry, not a governorate
          sender: {agency: MOH, kind: governorate}
          effect: allow
        """
    )
    path = tmp_path / "p.yaml"
    path.write_text(text, encoding="utf-8")
    result = check_policy(path, demo_snapshot, FEDERATION)
    assert result.ok
    assert [(p.severity, p.line, p.rule) for p in result.problems] == [
        (Severity.WARNING, 5, "nothing")
    ]
    assert "warning: " in str(result.problems[0])


def test_declared_roles_are_known(demo_snapshot: DirectorySnapshot) -> None:
    rules = "- {id: r, description: d, sender: {role: auditor}, effect: allow}"
    assert not check_policy(policy_text(rules), demo_snapshot, FEDERATION).ok
    declared = policy_text(rules, extra="roles: [auditor]\n")
    assert check_policy(declared, demo_snapshot, FEDERATION).ok


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("version: 1\nrules:\n  - &a {id: x, description: d, effect: allow}\n", 3, "anchors (&a)"),
        ("version: 1\nx: &a 1\nrules: *a\n", 3, "aliases (*a)"),
        ("version: 1\nrules: !!python/object:os.system []\n", 2, "tags"),
        ("version: 1\nrules:\n  - {id: x, effect: !!str allow, description: d}\n", 3, "tags"),
        ("version: 1\nrules: [\n  - x\n", 3, "YAML syntax error"),
        ("version: 1\nrules: []\n---\nversion: 1\n", 3, "only one YAML document"),
        ("version: 1\nrules: []\nrules: []\n", 3, "duplicate key 'rules'"),
        ("rules: []\n", 1, "missing required key 'version'"),
        ("version: 2\nrules: []\n", 1, "unsupported version 2"),
        ("version: 1\nrules: {a: 1}\n", 2, "rules must be a list"),
        ("- a\n- b\n", 1, "policy file must be a mapping"),
        ("version: 1\ndefault: maybe\nrules: []\n", 2, "unknown default 'maybe'"),
    ],
)
def test_yaml_level_mistakes(
    demo_snapshot: DirectorySnapshot, text: str, line: int, words: str
) -> None:
    result = check_policy(text, demo_snapshot, FEDERATION, name="inline.yaml")
    assert not result.ok
    assert any(
        p.line == line and words in p.message and p.file == "inline.yaml" for p in result.problems
    ), [str(p) for p in result.problems]


def test_empty_and_unreadable_files(tmp_path: Path, demo_snapshot: DirectorySnapshot) -> None:
    assert "empty" in check_policy("", demo_snapshot).problems[0].message
    missing = check_policy(tmp_path / "nope.yaml", demo_snapshot)
    assert not missing.ok and "cannot read" in missing.problems[0].message
    bad = check_policy(b"version: 1\nrules: []\n\xff", demo_snapshot)
    assert "not UTF-8" in bad.problems[0].message


def test_federated_domain_clashing_with_a_local_domain(demo_snapshot: DirectorySnapshot) -> None:
    result = check_policy("version: 1\nrules: []\n", demo_snapshot, {"bad": {"moh.gov.example"}})
    assert not result.ok and "also a local domain" in result.problems[0].message

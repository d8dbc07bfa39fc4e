"""PolicyHolder: reload and rebind swap the whole policy, or keep the old one."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from policies.directory import (
    AgencyKind,
    AgencyRecord,
    Clearance,
    DirectorySnapshot,
    EmployeeRecord,
    EmployeeStatus,
)
from policies.holder import PolicyHolder
from policies.problems import PolicyError
from testkit.policy import FEDERATION, POLICY_FILE, build_demo_snapshot, policy_text

MOH_MIN = "minister@moh.gov.example"
MOF_MIN = "minister@mof.gov.example"
BUD_DIR = "budget.director@mof.gov.example"

OPEN = policy_text("- {id: open, description: everyone, effect: allow}")
MINISTRIES_ONLY = policy_text(
    """
    - id: ministries
      description: ministries only
      sender: {kind: ministry}
      recipient: {kind: ministry}
      effect: allow
    """
)
NAMES_MOF_BUD = policy_text(
    """
    - id: budget
      description: the budget directorate writes to MOH
      sender: {agency: MOF-BUD}
      recipient: {agency: MOH}
      effect: allow
    """
)


@pytest.fixture
def policy_file(tmp_path: Path) -> Path:
    path = tmp_path / "policies.yaml"
    path.write_text(MINISTRIES_ONLY, encoding="utf-8")
    return path


def test_load_exposes_the_content_hash(policy_file: Path, demo_snapshot: DirectorySnapshot) -> None:
    holder = PolicyHolder.load(policy_file, demo_snapshot, FEDERATION)
    assert holder.source_hash == hashlib.sha256(policy_file.read_bytes()).hexdigest()
    assert holder.source == policy_file
    assert holder.decide(MOH_MIN, MOF_MIN).rule_id == "ministries"


def test_reload_with_a_broken_file_keeps_the_old_policy_deciding(
    policy_file: Path, demo_snapshot: DirectorySnapshot
) -> None:
    holder = PolicyHolder.load(policy_file, demo_snapshot, FEDERATION)
    old_policy, old_hash = holder.policy, holder.source_hash
    policy_file.write_text(OPEN.replace("effect: allow", "effect: alow"), encoding="utf-8")
    result = holder.reload()
    assert not result.ok
    assert [(p.line, p.rule) for p in result.problems] == [(3, "open")]
    assert "unknown effect 'alow'" in result.problems[0].message
    assert result.active_hash == old_hash != result.attempted_hash
    assert holder.policy is old_policy and holder.source_hash == old_hash
    assert holder.decide(MOH_MIN, MOF_MIN).rule_id == "ministries"
    assert not holder.decide(BUD_DIR, MOH_MIN).allowed
    with pytest.raises(PolicyError):
        result.raise_for_problems()


def test_reload_with_a_valid_file_swaps_in_whole(
    policy_file: Path, demo_snapshot: DirectorySnapshot
) -> None:
    holder = PolicyHolder.load(policy_file, demo_snapshot, FEDERATION)
    policy_file.write_text(OPEN, encoding="utf-8")
    result = holder.reload()
    assert result.ok and result.problems == ()
    assert holder.source_hash == result.active_hash == hashlib.sha256(OPEN.encode()).hexdigest()
    assert holder.decide(BUD_DIR, MOH_MIN).rule_id == "open"


def test_reload_from_text_and_from_another_file(
    tmp_path: Path, policy_file: Path, demo_snapshot: DirectorySnapshot
) -> None:
    holder = PolicyHolder.load(policy_file, demo_snapshot, FEDERATION)
    assert holder.reload(OPEN).ok and holder.source == policy_file
    assert holder.decide(BUD_DIR, MOH_MIN).allowed
    assert holder.reload(POLICY_FILE).ok and holder.source == POLICY_FILE


def test_reload_without_a_file(demo_snapshot: DirectorySnapshot) -> None:
    holder = PolicyHolder.load(OPEN, demo_snapshot, FEDERATION)
    result = holder.reload()
    assert not result.ok and "no policy file" in result.problems[0].message


def test_load_refuses_a_broken_policy(demo_snapshot: DirectorySnapshot) -> None:
    with pytest.raises(PolicyError) as caught:
        PolicyHolder.load("version: 1\n", demo_snapshot, FEDERATION)
    assert "missing required key 'rules'" in str(caught.value)


def test_rebind_to_a_new_directory(demo_snapshot: DirectorySnapshot) -> None:
    holder = PolicyHolder.load(OPEN, demo_snapshot, FEDERATION)
    newcomer = EmployeeRecord(
        "new@moh.gov.example",
        "MOH",
        "New",
        "جديد",
        "clerk",
        Clearance.INTERNAL,
        EmployeeStatus.ACTIVE,
        "MOH-000099-X",
    )
    assert holder.decide(MOH_MIN, newcomer.address).rule_id == "unknown-recipient"
    bigger = build_demo_snapshot(extra_employees=(newcomer,))
    result = holder.rebind(bigger)
    assert result.ok and holder.snapshot is bigger
    assert holder.decide(MOH_MIN, newcomer.address).rule_id == "open"
    assert holder.source_hash == hashlib.sha256(OPEN.encode()).hexdigest()


def test_rebind_keeps_the_old_pair_when_the_policy_no_longer_validates(
    demo_snapshot: DirectorySnapshot,
) -> None:
    holder = PolicyHolder.load(NAMES_MOF_BUD, demo_snapshot, FEDERATION)
    old = holder.policy
    smaller = build_demo_snapshot(drop_agencies=frozenset({"MOF-BUD"}))
    result = holder.rebind(smaller)
    assert not result.ok
    assert [(p.line, p.rule) for p in result.problems] == [(5, "budget")]
    assert "unknown agency MOF-BUD" in result.problems[0].message
    assert holder.policy is old and holder.snapshot is demo_snapshot
    assert holder.decide(BUD_DIR, MOH_MIN).allowed


def test_reload_against_a_new_snapshot(policy_file: Path, demo_snapshot: DirectorySnapshot) -> None:
    holder = PolicyHolder.load(policy_file, demo_snapshot, FEDERATION)
    extra = AgencyRecord(
        "MOE",
        "Ministry of Education",
        "وزارة التربية",
        AgencyKind.MINISTRY,
        "moe.gov.example",
        None,
    )
    boss = EmployeeRecord(
        "minister@moe.gov.example",
        "MOE",
        "M",
        "م",
        "minister",
        Clearance.SECRET,
        EmployeeStatus.ACTIVE,
        "MOE-000001-X",
    )
    snapshot = build_demo_snapshot(extra_agencies=(extra,), extra_employees=(boss,))
    assert holder.reload(snapshot=snapshot).ok
    assert holder.decide(boss.address, MOH_MIN).rule_id == "ministries"


def test_policy_objects_are_immutable(demo_snapshot: DirectorySnapshot) -> None:
    holder = PolicyHolder.load(OPEN, demo_snapshot, FEDERATION)
    with pytest.raises(AttributeError):
        holder.policy.snapshot = demo_snapshot  # type: ignore[misc]

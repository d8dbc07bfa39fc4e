"""Fixtures for the policy engine tests: the demo directory and the shipped policy."""

from __future__ import annotations

import pytest

from policies.directory import DirectorySnapshot
from policies.engine import Policy
from policies.loader import load_policy
from testkit.policy import FEDERATION, POLICY_FILE, build_demo_snapshot


@pytest.fixture(scope="session")
def demo_snapshot() -> DirectorySnapshot:
    return build_demo_snapshot()


@pytest.fixture(scope="session")
def shipped_policy(demo_snapshot: DirectorySnapshot) -> Policy:
    return load_policy(POLICY_FILE, demo_snapshot, FEDERATION)

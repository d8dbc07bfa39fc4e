"""`PolicyHolder`: the current compiled policy, swapped whole on reload.

Owns: reload and rebind-to-a-new-directory with keep-the-old-on-failure
semantics. Must not: watch files, log or schedule; the caller decides when.
Readers take `holder.policy` once per decision; writers replace one attribute
holding an immutable `Policy` (a consistent policy + snapshot pair).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from policies.decision import RCPT_TIME, Decision, MessageFacts
from policies.directory import DirectorySnapshot
from policies.engine import Policy
from policies.loader import Federation, PolicySource, check_document, check_policy
from policies.problems import PolicyError, Problem, sort_problems


@dataclass(frozen=True, slots=True)
class ReloadResult:
    """`ok`: the new policy is active. Otherwise the old one still is."""

    ok: bool
    problems: tuple[Problem, ...]
    attempted_hash: str  # sha256 of what was offered ("" if unreadable)
    active_hash: str  # sha256 of the policy now deciding

    def raise_for_problems(self) -> None:
        if not self.ok:
            raise PolicyError(self.problems)


class PolicyHolder:
    """Holds the active `Policy`; `reload` and `rebind` swap it only when valid."""

    def __init__(self, policy: Policy, source: Path | None = None) -> None:
        self._policy = policy
        self._source = source
        self._write_lock = threading.Lock()

    @classmethod
    def load(
        cls,
        source: PolicySource,
        snapshot: DirectorySnapshot,
        federation: Federation | None = None,
    ) -> PolicyHolder:
        """First load; raises PolicyError listing every problem."""
        result = check_policy(source, snapshot, federation)
        if result.policy is None:
            raise PolicyError(result.problems)
        return cls(result.policy, source if isinstance(source, Path) else None)

    @property
    def policy(self) -> Policy:
        return self._policy

    @property
    def snapshot(self) -> DirectorySnapshot:
        return self._policy.snapshot

    @property
    def source_hash(self) -> str:
        """sha256 (hex) of the active policy file's bytes, for the audit log."""
        return self._policy.source_hash

    @property
    def source(self) -> Path | None:
        return self._source

    def decide(self, sender: str, recipient: str, facts: MessageFacts = RCPT_TIME) -> Decision:
        return self._policy.decide(sender, recipient, facts)

    def reload(
        self,
        source: PolicySource | None = None,
        snapshot: DirectorySnapshot | None = None,
        federation: Federation | None = None,
    ) -> ReloadResult:
        """Validate `source` (default: the file loaded last) and swap it in whole.

        `snapshot` and `federation` default to the active ones. On any error the
        old policy stays active and the result lists the problems.
        """
        with self._write_lock:
            current = self._policy
            if source is None:
                if self._source is None:
                    problem = Problem("<policy>", None, None, "no policy file to reload from")
                    return ReloadResult(False, (problem,), "", current.source_hash)
                source = self._source
            result = check_policy(
                source,
                snapshot or current.snapshot,
                current.federation if federation is None else federation,
            )
            if result.policy is None:
                return ReloadResult(False, result.problems, result.source_hash, current.source_hash)
            self._policy = result.policy
            if isinstance(source, Path):
                self._source = source
            return ReloadResult(True, result.problems, result.source_hash, result.source_hash)

    def rebind(
        self, snapshot: DirectorySnapshot, federation: Federation | None = None
    ) -> ReloadResult:
        """Recompile the active policy against a new directory snapshot.

        When the policy no longer validates (e.g. it names an agency that was
        removed), the old policy + snapshot pair stays active.
        """
        with self._write_lock:
            current = self._policy
            policy, problems = check_document(
                current.document,
                snapshot,
                current.federation if federation is None else federation,
            )
            found = sort_problems(problems)
            if policy is None:
                return ReloadResult(False, found, current.source_hash, current.source_hash)
            self._policy = policy
            return ReloadResult(True, found, policy.source_hash, policy.source_hash)

"""Entry points for policy files: read, parse, validate, compile.

Owns: turning a file (or text) into a compiled `Policy` plus every problem,
and the content hash for the audit log. Must not: do any I/O but reading the
one policy file it is given.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path

from policies.directory import DirectorySnapshot
from policies.engine import Policy
from policies.parser import parse_policy
from policies.problems import PolicyError, Problem, errors_in, sort_problems
from policies.rules import PolicyDocument
from policies.selectors import DirectoryIndex
from policies.validate import validate_document

PolicySource = str | bytes | Path  # Path: a file; str/bytes: the YAML text itself
Federation = Mapping[str, Collection[str]]  # peer name -> its mail domains


@dataclass(frozen=True, slots=True)
class PolicyCheck:
    """The outcome of checking a policy: the compiled policy when there is no error."""

    policy: Policy | None
    problems: tuple[Problem, ...]
    source_name: str
    source_hash: str  # sha256 of the bytes, hex ("" when the file could not be read)

    @property
    def ok(self) -> bool:
        return self.policy is not None

    @property
    def errors(self) -> tuple[Problem, ...]:
        return errors_in(self.problems)


def read_source(source: PolicySource, name: str | None = None) -> tuple[str, bytes, str]:
    """(name, bytes, text) of a source; raises PolicyError when it cannot be read."""
    if isinstance(source, Path):
        label = name or str(source)
        try:
            data = source.read_bytes()
        except OSError as exc:
            raise PolicyError(
                [Problem(label, None, None, f"cannot read: {exc.strerror}")]
            ) from None
    else:
        label = name or "<text>"
        data = source.encode("utf-8") if isinstance(source, str) else source
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PolicyError([Problem(label, None, None, f"not UTF-8 text: {exc.reason}")]) from None
    return label, data, text


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_document(
    document: PolicyDocument, snapshot: DirectorySnapshot, federation: Federation | None = None
) -> tuple[Policy | None, list[Problem]]:
    """Validate an already parsed document and compile it when there is no error."""
    index = DirectoryIndex(snapshot, federation or {})
    problems = validate_document(document, snapshot, federation, index)
    if errors_in(problems):
        return None, problems
    return Policy(document, snapshot, federation), problems


def check_policy(
    source: PolicySource,
    snapshot: DirectorySnapshot,
    federation: Federation | None = None,
    *,
    name: str | None = None,
) -> PolicyCheck:
    """Read, parse, validate and compile; never raises for a bad policy.

    Problems are every mistake found (errors and warnings), in file order.
    `policy` is None when there is any error.
    """
    try:
        label, data, text = read_source(source, name)
    except PolicyError as exc:
        label = exc.problems[0].file if exc.problems else "<policy>"
        return PolicyCheck(None, exc.problems, label, "")
    digest = sha256_hex(data)
    document, problems = parse_policy(text, label, digest)
    policy = None
    if document is not None:
        if errors_in(problems):
            # Still report directory problems so one run lists everything.
            problems += validate_document(document, snapshot, federation, shadowing=False)
        else:
            policy, more = check_document(document, snapshot, federation)
            problems += more
    if errors_in(problems):
        policy = None
    return PolicyCheck(policy, sort_problems(problems), label, digest)


def load_policy(
    source: PolicySource,
    snapshot: DirectorySnapshot,
    federation: Federation | None = None,
    *,
    name: str | None = None,
) -> Policy:
    """Like `check_policy` but returns the Policy or raises PolicyError with all problems."""
    result = check_policy(source, snapshot, federation, name=name)
    if result.policy is None:
        raise PolicyError(result.problems)
    return result.policy

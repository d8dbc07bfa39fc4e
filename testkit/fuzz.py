"""Fuzz targets: one function per parser that takes arbitrary bytes and checks what
must hold whatever arrives. Driven by Hypothesis in the suite (tests/*/test_*fuzz*.py,
a few hundred examples; `BARID_FUZZ_EXAMPLES=N` for a long run) and by atheris
(testkit/fuzz_atheris.py) where it is installed. Each target raises only on a bug."""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

from pymap.parsing import Params
from pymap.parsing.command import Command
from pymap.parsing.commands import Commands

from gateway.imap.connection import MAX_NESTING, Refused, parse_command
from gateway.imap.scan import Announcement, CommandScan
from gateway.mime import Analysis, MimeLimits, Rejection, analyze
from policies.decision import MessageFacts
from policies.directory import DirectorySnapshot
from policies.loader import check_policy
from policies.problems import errors_in

ROOT = Path(__file__).resolve().parent.parent


def examples(default: int) -> int:
    """Examples per Hypothesis fuzz test: `default`, or BARID_FUZZ_EXAMPLES for long runs."""
    return int(os.environ.get("BARID_FUZZ_EXAMPLES", "0")) or default


# ---- IMAP: the command scan and pymap's parse of the whole command ---------------------------


@cache
def _commands() -> Commands:
    return Commands()


def split_command(data: bytes) -> tuple[bytes, CommandScan] | None:
    """Read `data` as the connection reads one command: line by line, each announced
    literal's octets taken whole and rewritten as LITERAL+. None when the data ends
    inside the command (the connection would wait for more)."""
    scan = CommandScan()
    out = bytearray()
    at = 0
    while True:
        newline = data.find(b"\n", at)
        if newline < 0:
            return None
        line = data[at : newline + 1]
        at = newline + 1
        found = scan.line(line)
        if found is None:
            out += line
            return bytes(out), scan
        if found.size == Announcement.TOO_LONG or at + found.size > len(data):
            return None
        if found.synchronizing:
            line = line[: found.start] + line[found.start :].replace(b"}", b"+}", 1)
        out += line + data[at : at + found.size]
        at += found.size


def imap_command(data: bytes) -> Command | Refused | None:
    """The scan never raises and sees every literal; pymap's parse of the result
    gives a command or a `Refused`, never another exception."""
    split = split_command(data)
    if split is None:
        return None
    text, scan = split
    assert scan.examined <= len(data)  # every octet outside literals scanned once
    if scan.deepest > MAX_NESTING:
        return None  # the connection answers BAD without parsing
    try:
        return parse_command(_commands(), memoryview(text), Params(max_append_len=65536), b"*")
    except Refused as refused:
        return refused


# ---- MIME analysis ---------------------------------------------------------------------------

MIME_LIMITS = MimeLimits(max_parts=30, max_depth=5)


def mime(data: bytes) -> None:
    """`analyze` answers with a value, never an exception; refusals are ASCII 550/552."""
    result = analyze(data, MIME_LIMITS)
    assert isinstance(result, (Analysis, Rejection))
    if isinstance(result, Rejection):
        assert result.reason.isascii() and result.code in (550, 552)
    else:
        for unit in result.signed_units:
            assert all(0 <= i < len(result.documents) for i in unit.covers)


# ---- the policy loader -----------------------------------------------------------------------


def policy(text: bytes) -> None:
    """`check_policy` reports problems for any text, never raises; a policy it
    compiles decides for the demo employees without raising."""
    snapshot, federation = _policy_world()
    result = check_policy(text, snapshot, federation, name="fuzz.yaml")
    for problem in result.problems:
        assert (problem.line is None or problem.line >= 1) and str(problem)
    if result.policy is not None:
        assert not errors_in(result.problems)
        employees = sorted(snapshot.employees)[:3]
        for sender in employees:
            for recipient in employees:
                result.policy.decide(sender, recipient, MessageFacts())


@cache
def _policy_world() -> tuple[DirectorySnapshot, dict[str, list[str]]]:
    from testkit.policy import FEDERATION, build_demo_snapshot

    return build_demo_snapshot(), {k: list(v) for k, v in FEDERATION.items()}

"""Submission runs its end-of-data checks through the shared runner (gateway.checks.runner):
a new check is one class placed in `SUBMISSION_CHECKS`, and a real SMTP session
gets its verdict, audited with its reason, with nothing stored."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from test_submission_e2e import MOF, MOH, accepted, code_of, refused

from gateway.checks import submission as checks
from gateway.checks.facts import SubmissionFacts
from gateway.checks.runner import Check
from gateway.mime.verdicts import PASS, Verdict
from testkit.messages import pgp_mime, unsigned

EXTRA_REPLY = "550 5.7.1 Refused by the added check"


class RecordingCheck(Check[SubmissionFacts]):
    """A new check: records what it saw, refuses when told to."""

    name = "added"
    needs = ("analysis", "documents")

    def __init__(self, verdict: Verdict) -> None:
        self.verdict = verdict
        self.seen: list[str] = []

    def run(self, facts: SubmissionFacts) -> Verdict:
        assert facts.analysis is not None and facts.documents is not None
        self.seen.append(facts.analysis.from_address)
        return self.verdict


async def test_an_added_check_refuses_a_good_letter(
    live: Any, gnupghome: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    added = RecordingCheck(Verdict(EXTRA_REPLY, "added-check"))
    monkeypatch.setattr(checks, "SUBMISSION_CHECKS", (*checks.SUBMISSION_CHECKS, added))
    raw = pgp_mime(gnupghome, MOH, MOH, [MOF], extra=code_of(live, MOH))
    text = await refused(live, MOH, [MOF], raw, 550, "5.7.1", "Refused by the added check")
    assert text == EXTRA_REPLY.split(" ", 1)[1]
    assert added.seen == [MOH]

    from gateway.store.audit import recent

    async with live.gateway.sessions() as s:
        rejects = await recent(s, action="message.reject")
    assert rejects[-1]["details"]["reason"] == "added-check"


async def test_an_earlier_refusal_ends_the_run_before_the_added_check(
    live: Any, gnupghome: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    added = RecordingCheck(PASS)
    monkeypatch.setattr(checks, "SUBMISSION_CHECKS", (*checks.SUBMISSION_CHECKS, added))
    raw = unsigned(MOH, [MOF], extra=code_of(live, MOH))  # refused by the signature check
    await refused(live, MOH, [MOF], raw, 550, "5.7.1")
    assert added.seen == []
    # and a good letter passes every check, the added one included
    await accepted(live, MOH, [MOF], pgp_mime(gnupghome, MOH, MOH, [MOF],
                                               extra=code_of(live, MOH)))  # fmt: skip
    assert added.seen == [MOH]

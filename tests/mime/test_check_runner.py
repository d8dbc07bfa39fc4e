"""The ordered check runner (gateway.checks.runner): pure unit tests.

Proves: checks run in list order; the worst verdict wins (a permanent refusal
over a temporary one, either over a pass) and the earlier of two equal ones;
the run ends at the first permanent refusal; a check's needs are enforced at
run time and when a list is built; the shipped submission and transfer lists
are in an order that meets every need.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from gateway.checks.runner import Check, MissingFactError, check_order, run_checks
from gateway.checks.submission import SUBMISSION_CHECKS
from gateway.checks.transfer import ACCEPTANCE_CHECKS, AUTHENTICITY_CHECKS, BASE_FACTS
from gateway.mime.verdicts import PASS, Severity, Verdict

TEMPORARY = Verdict("450 4.7.1 Sending rate exceeded; try again later", "rate", "r1")
PERMANENT = Verdict("550 5.7.1 Refused", "policy", "r2")
OTHER_PERMANENT = Verdict("554 5.7.5 Signature refused", "signature")


@dataclass
class Facts:
    log: list[str] = field(default_factory=list)
    found: str | None = None


class Fixed(Check[Facts]):
    """A check that records that it ran and gives a fixed verdict."""

    def __init__(self, name: str, verdict: Verdict, needs: tuple[str, ...] = (),
                 provides: tuple[str, ...] = ()) -> None:  # fmt: skip
        self.name, self.verdict, self.needs, self.provides = name, verdict, needs, provides

    def run(self, facts: Facts) -> Verdict:
        facts.log.append(self.name)
        for fact in self.provides:
            setattr(facts, fact, self.name)
        return self.verdict


def test_all_pass_runs_every_check_in_order() -> None:
    facts = Facts()
    checks = [Fixed("a", PASS), Fixed("b", PASS), Fixed("c", PASS)]
    assert run_checks(checks, facts) == PASS
    assert facts.log == ["a", "b", "c"]


def test_an_empty_list_passes() -> None:
    assert run_checks([], Facts()).passed


def test_permanent_beats_an_earlier_temporary() -> None:
    facts = Facts()
    verdict = run_checks([Fixed("t", TEMPORARY), Fixed("p", PERMANENT)], facts)
    assert verdict == PERMANENT
    assert facts.log == ["t", "p"]


def test_temporary_beats_pass_and_the_later_checks_still_run() -> None:
    facts = Facts()
    ran: list[str] = []
    verdict = run_checks([Fixed("a", PASS), Fixed("t", TEMPORARY), Fixed("c", PASS)], facts,
                         ran=ran)  # fmt: skip
    assert verdict == TEMPORARY
    assert ran == ["a", "t", "c"]


def test_the_first_permanent_refusal_wins_and_ends_the_run() -> None:
    facts = Facts()
    checks = [Fixed("a", PASS), Fixed("p1", PERMANENT), Fixed("p2", OTHER_PERMANENT),
              Fixed("t", TEMPORARY)]  # fmt: skip
    assert run_checks(checks, facts) == PERMANENT
    assert facts.log == ["a", "p1"]


def test_of_two_temporary_verdicts_the_earlier_wins() -> None:
    later = Verdict("451 4.3.0 Temporary failure; try again later", "internal")
    assert run_checks([Fixed("t1", TEMPORARY), Fixed("t2", later)], Facts()) == TEMPORARY


def test_order_of_the_list_decides_between_equals() -> None:
    one = [Fixed("p1", PERMANENT), Fixed("p2", OTHER_PERMANENT)]
    assert run_checks(one, Facts()) == PERMANENT
    assert run_checks(list(reversed(one)), Facts()) == OTHER_PERMANENT


def test_severity_follows_the_reply_class() -> None:
    assert PASS.severity is Severity.PASS and PASS.passed
    assert TEMPORARY.severity is Severity.TEMPORARY and not TEMPORARY.passed
    assert PERMANENT.severity is Severity.PERMANENT
    with pytest.raises(ValueError):
        Verdict("250 2.0.0 Accepted")


def test_a_provided_fact_reaches_the_check_that_needs_it() -> None:
    facts = Facts()
    checks = [Fixed("producer", PASS, provides=("found",)), Fixed("user", PASS, needs=("found",))]
    assert run_checks(checks, facts).passed
    assert facts.log == ["producer", "user"] and facts.found == "producer"


def test_a_missing_fact_is_an_error_not_a_pass() -> None:
    facts = Facts()
    with pytest.raises(MissingFactError, match="found"):
        run_checks([Fixed("user", PASS, needs=("found",))], facts)
    assert facts.log == []  # the check did not run


def test_check_order_refuses_a_need_met_only_later() -> None:
    producer = Fixed("producer", PASS, provides=("found",))
    user = Fixed("user", PASS, needs=("found",))
    check_order([producer, user])
    with pytest.raises(ValueError, match="user"):
        check_order([user, producer])
    check_order([user], given=("found",))


def test_check_order_refuses_a_name_used_twice() -> None:
    with pytest.raises(ValueError, match="twice"):
        check_order([Fixed("a", PASS), Fixed("a", PASS)])


def test_the_submission_checks_in_their_documented_order() -> None:
    names = [check.name for check in SUBMISSION_CHECKS]
    assert names == ["structure", "headers", "signatures", "employee-code", "classification",
                     "policy"]  # fmt: skip
    check_order(SUBMISSION_CHECKS, given=("inputs",))


def test_the_transfer_checks_in_their_documented_order() -> None:
    assert [c.name for c in AUTHENTICITY_CHECKS] == ["dkim", "malformed", "from-mismatch"]
    assert [c.name for c in ACCEPTANCE_CHECKS] == ["classification", "policy"]
    check_order(AUTHENTICITY_CHECKS + ACCEPTANCE_CHECKS, given=BASE_FACTS)

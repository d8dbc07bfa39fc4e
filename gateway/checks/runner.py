"""The ordered check runner shared by submission and peer transfer.

Owns: what a check is (a name, the facts it needs and provides, `run(facts) ->
Verdict`), checking that a list's needs are met in order, and running the list:
the worst verdict wins, ties go to the earlier check. Must not: know any
particular check, reply wording or I/O; checks live with their listener.

A permanent refusal is the worst verdict there is, so the run stops at the
first one: the checks after it could not change the outcome (and cost nothing).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from typing import Generic, TypeVar

from gateway.mime.verdicts import PASS, Severity, Verdict

FactsT = TypeVar("FactsT")


class Check(ABC, Generic[FactsT]):
    """One check of a message. Subclasses set `name` (bounded, for logs and tests),
    `needs` (fact attributes an earlier check, or the caller, must have set: not
    None) and `provides` (the fact attributes it sets when it passes)."""

    name: str = ""
    needs: tuple[str, ...] = ()
    provides: tuple[str, ...] = ()

    @abstractmethod
    def run(self, facts: FactsT) -> Verdict:
        """The verdict on the message; may set the attributes it `provides`."""


class MissingFactError(LookupError):
    """A check ran without a fact it needs: the list is in the wrong order (a bug)."""


def check_order(checks: Sequence[Check[FactsT]], given: Iterable[str] = ()) -> None:
    """Raise ValueError when a check needs a fact no earlier check provides (nor the
    caller gives), or when two checks share a name."""
    known = set(given)
    names: set[str] = set()
    for check in checks:
        if not check.name or check.name in names:
            raise ValueError(f"check name {check.name!r} is empty or used twice")
        names.add(check.name)
        missing = [need for need in check.needs if need not in known]
        if missing:
            raise ValueError(f"check {check.name!r} needs {', '.join(missing)} before it")
        known.update(check.provides)


def run_checks(
    checks: Sequence[Check[FactsT]], facts: FactsT, *, ran: list[str] | None = None
) -> Verdict:
    """Run `checks` in order on `facts`; the worst verdict (earliest among equals).

    `ran`, when given, receives the name of each check that ran (for tests and traces).
    """
    worst = PASS
    for check in checks:
        missing = [need for need in check.needs if getattr(facts, need, None) is None]
        if missing:
            raise MissingFactError(f"check {check.name!r} needs {', '.join(missing)}")
        verdict = check.run(facts)
        if ran is not None:
            ran.append(check.name)
        if verdict.severity > worst.severity:
            worst = verdict
        if worst.severity is Severity.PERMANENT:
            break
    return worst

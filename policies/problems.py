"""Problems found in a policy or cases file, each naming the file, line and rule.

Owns: the `Problem` value, its one-line rendering and `PolicyError`. Must not:
find problems itself; the parser, the validator and the cases runner do that.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass


class Severity(enum.StrEnum):
    ERROR = "error"  # the file is refused
    WARNING = "warning"  # reported, the file is still accepted


@dataclass(frozen=True, slots=True)
class Problem:
    """One mistake. `line` is 1-based (None when it concerns the whole file)."""

    file: str
    line: int | None
    rule: str | None
    message: str
    severity: Severity = Severity.ERROR

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        rule = f" rule {self.rule!r}:" if self.rule else ""
        prefix = "warning: " if self.severity is Severity.WARNING else ""
        return f"{where}:{rule} {prefix}{self.message}"

    def to_dict(self) -> dict[str, object]:
        return {
            "file": self.file,
            "line": self.line,
            "rule": self.rule,
            "severity": self.severity.value,
            "message": self.message,
        }


def errors_in(problems: Iterable[Problem]) -> tuple[Problem, ...]:
    """Only the problems that refuse a file."""
    return tuple(p for p in problems if p.severity is Severity.ERROR)


def sort_problems(problems: Iterable[Problem]) -> tuple[Problem, ...]:
    """File order: by file, then line (file-level problems first), then message."""
    return tuple(
        sorted(problems, key=lambda p: (p.file, -1 if p.line is None else p.line, p.message))
    )


class PolicyError(ValueError):
    """A policy (or cases) file was refused; `problems` lists every mistake found."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = tuple(problems)
        count = len(errors_in(self.problems))
        lines = "\n".join(str(p) for p in self.problems)
        super().__init__(f"{count} problem(s):\n{lines}")

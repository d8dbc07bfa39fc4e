"""Verdicts as values: what a check hands back to the SMTP layer.

Owns: `Rejection` and the three reply classes this package produces (RFC 3463
enhanced codes, docs/CONTRACT.md §5), and `Verdict`, the result of one check of
gateway.checks.runner (pass, or a reply with its severity). Must not: write SMTP
lines on the wire or carry internal exception text; a reason is short, ASCII
and safe to show a client.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class Severity(IntEnum):
    """How bad a verdict is; the worst of a run wins."""

    PASS = 0
    TEMPORARY = 1  # a 4xx reply: the client tries again later
    PERMANENT = 2  # a 5xx reply: refused


@dataclass(frozen=True, slots=True)
class Verdict:
    """One check's verdict: pass (no reply), or the reply line that refuses the message.

    `reason` is a short, bounded label for metrics and the audit trail; `rule_id`
    names the policy rule that decided; `detail` goes to the audit trail only and
    is never shown to the client.
    """

    reply: str = ""
    reason: str = "ok"
    rule_id: str = ""
    detail: str = ""

    def __post_init__(self) -> None:
        if self.reply and self.reply[:1] not in ("4", "5"):
            raise ValueError("a verdict's reply is a 4xx or 5xx refusal")

    @property
    def severity(self) -> Severity:
        if not self.reply:
            return Severity.PASS
        return Severity.TEMPORARY if self.reply.startswith("4") else Severity.PERMANENT

    @property
    def passed(self) -> bool:
        return self.severity is Severity.PASS


PASS = Verdict()


@dataclass(frozen=True, slots=True)
class Rejection:
    """A permanent refusal of the message: `550 5.6.0 bare LF in message`."""

    code: int
    enhanced: str
    reason: str

    @property
    def reply(self) -> str:
        return f"{self.code} {self.enhanced} {self.reason}"


def _ascii(reason: str) -> str:
    return reason.encode("ascii", "replace").decode("ascii")


def malformed(reason: str) -> Rejection:
    """550 5.6.0: bare CR/LF, NUL or broken MIME (RFC 3463 §3.7 media error)."""
    return Rejection(550, "5.6.0", _ascii(reason))


def too_big(reason: str) -> Rejection:
    """552 5.3.4: message too big, too many parts, nesting too deep (RFC 3463 §3.4)."""
    return Rejection(552, "5.3.4", _ascii(reason))


def refused(reason: str) -> Rejection:
    """550 5.7.1: the message is well formed but not acceptable (RFC 3463 §3.8)."""
    return Rejection(550, "5.7.1", _ascii(reason))


class RejectedError(Exception):
    """Internal early exit carrying a `Rejection`; never escapes `gateway.mime`."""

    def __init__(self, rejection: Rejection) -> None:
        super().__init__(rejection.reason)
        self.rejection = rejection

"""Rejections as values: the reply a MIME check hands back to the SMTP layer.

Owns: `Rejection` and the three reply classes this package produces (RFC 3463
enhanced codes, docs/CONTRACT.md §5). Must not: format SMTP lines on the wire or carry
internal exception text; a reason is short, ASCII and safe to show a client.
"""

from __future__ import annotations

from dataclasses import dataclass


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

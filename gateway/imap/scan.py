"""Scanning one IMAP command as its lines arrive: literal announcements and nesting.

Owns: finding the literal a line announces at its end (RFC 3501 §4.3, RFC 7888),
and the deepest parenthesis nesting outside quoted strings and literals, in one
pass over each line (literal octets are never scanned). Must not: read sockets
or parse commands; pymap parses the command once it is whole.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_LITERAL_DIGITS = 19  # more digits than any length we would accept

# At the very end of a line: {N}, {N+}, and BINARY's ~{N} / ~{N+}.
_ANNOUNCE = re.compile(rb"(~?)\{(\d+)(\+?)\}\r?\n\Z")
# Outside a literal: a quoted string (possibly unterminated: it ends at the line
# end), or a parenthesis. Everything else is skipped by the regex engine in C.
_TOKENS = re.compile(rb'"(?:[^"\\\r\n]|\\.)*"?|[()]')


@dataclass(frozen=True, slots=True)
class Announcement:
    """A literal announced at the end of a line."""

    size: int  # octets; `TOO_LONG` when the digits cannot be a length we take
    synchronizing: bool  # {N}: the client waits for "+"; {N+}: the octets follow at once
    start: int  # offset of "{" (or "~") in the line

    TOO_LONG = 2**63


class CommandScan:
    """The scan of one command: feed its lines in order (never the literal octets).

    Work is proportional to the octets fed: each line is searched once for its
    announcement and once for quotes and parentheses. `examined` counts them.
    """

    __slots__ = ("deepest", "depth", "examined", "literals")

    def __init__(self) -> None:
        self.depth = 0
        self.deepest = 0
        self.literals = 0
        self.examined = 0

    def line(self, data: bytes | bytearray | memoryview) -> Announcement | None:
        """One line (ending in LF): update the nesting; return its announcement."""
        self.examined += len(data)
        found = _ANNOUNCE.search(data)
        end = found.start() if found else len(data)
        depth, deepest = self.depth, self.deepest
        for token in _TOKENS.finditer(data, 0, end):
            ch = data[token.start()]
            if ch == 0x28:  # (
                depth += 1
                if depth > deepest:
                    deepest = depth
            elif ch == 0x29 and depth:  # )
                depth -= 1
        self.depth, self.deepest = depth, deepest
        if found is None:
            return None
        self.literals += 1
        digits = found.group(2)
        size = int(digits) if len(digits) <= MAX_LITERAL_DIGITS else Announcement.TOO_LONG
        return Announcement(size, not found.group(3), found.start())

"""Decoding the DATA stream of one SMTP transaction, chunk by chunk (pure, no I/O).

Owns: finding the end of data (CRLF.CRLF, RFC 5321 §4.1.1.4), undoing dot-stuffing
(§4.5.2), the size limit, and the strict edges checked before any parsing: lines
over 998 octets (RFC 5322 §2.1.1) and 8-bit header bytes without SMTPUTF8
(RFC 6531). Must not: read sockets, keep the message (callers sink the bytes),
or judge MIME.
"""

from __future__ import annotations

from dataclasses import dataclass

TERMINATOR = b"\r\n.\r\n"
MAX_LINE = 998  # octets, without the CRLF (RFC 5322 §2.1.1)


def _carried(buf: bytes) -> int:
    """Length of the longest suffix of `buf` that could start a terminator."""
    for size in (4, 3, 2, 1):
        if buf.endswith(TERMINATOR[:size]):
            return size
    return 0


class DataDecoder:
    """Feeds wire chunks; yields message bytes (dot-unstuffed) and what follows the end.

    The stream is searched as if a CRLF came before it, so that an empty message
    ('.' alone on the first line) ends the same way and a dot opening the first
    line is unstuffed. Bytes that might begin a terminator or a stuffed dot are
    held back until the next chunk decides them.
    """

    def __init__(self) -> None:
        self._carry = b"\r\n"
        self._virtual = 2  # leading bytes of the output that are not the message's
        self.done = False

    def feed(self, chunk: bytes) -> tuple[bytes, bytes]:
        """(message bytes, bytes after the terminator); the second is only set once done."""
        if self.done:
            return b"", chunk
        buf = self._carry + chunk
        end = buf.find(TERMINATOR)
        if end >= 0:
            self.done = True
            head, rest = buf[: end + 2], buf[end + len(TERMINATOR) :]
            self._carry = b""
        else:
            keep = _carried(buf)
            head, rest = buf[: len(buf) - keep], b""
            self._carry = buf[len(buf) - keep :]
        out = head.replace(b"\r\n.", b"\r\n") if b"\r\n." in head else head
        if self._virtual:
            cut = min(self._virtual, len(out))
            out, self._virtual = out[cut:], self._virtual - cut
        return out, rest


@dataclass
class EdgeRules:
    """Watches the decoded message for the strict edges; `problem` names the first found."""

    smtputf8: bool = False
    max_line: int = MAX_LINE
    problem: str = ""  # "" | "line" | "8bit-header"
    _run: int = 0  # octets of the current line so far
    _cr: bool = False  # the current line's last octet so far is CR
    _in_header: bool = True
    _header_tail: bytes = b"\r\n"  # a message opening with CRLF has an empty header

    def feed(self, out: bytes) -> None:
        if self.problem or not out:
            return
        self._check_lines(out)
        if self._in_header and not self.problem:
            self._check_header(out)

    def _check_lines(self, out: bytes) -> None:
        lines = out.split(b"\n")
        ends_cr = lines[0].endswith(b"\r") if lines[0] else self._cr
        first = self._run + len(lines[0])
        if len(lines) == 1:
            # the line goes on; a trailing CR may still be its end (one octet allowed)
            self._run, self._cr = first, ends_cr
            if first - ends_cr > self.max_line:
                self.problem = "line"
            return
        if first - ends_cr > self.max_line:
            self.problem = "line"
            return
        for line in lines[1:-1]:
            if len(line) > self.max_line and len(line) - line.endswith(b"\r") > self.max_line:
                self.problem = "line"
                return
        last = lines[-1]
        self._run, self._cr = len(last), last.endswith(b"\r")
        if self._run - self._cr > self.max_line:
            self.problem = "line"

    def _check_header(self, out: bytes) -> None:
        joined = self._header_tail + out
        end = joined.find(b"\r\n\r\n")
        header = joined if end < 0 else joined[:end]
        if not self.smtputf8 and not header.isascii():
            self.problem = "8bit-header"
        if end >= 0:
            self._in_header = False
        self._header_tail = joined[-3:]

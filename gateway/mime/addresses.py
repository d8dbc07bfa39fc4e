"""Mailboxes in From and Sender, and display names that pretend to be addresses.

Owns: reading an RFC 5322 §3.4 mailbox-list (quoted strings, comments, angle
addresses; no groups, which From and Sender never need) and the display-name
forgery test. Must not: decide whether an address belongs to anyone.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from gateway.mime.headers import decode_words

# RFC 5322 §3.2.3 atext, widened by RFC 6532 to any non-ASCII character.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~\-\u0080-\U0010ffff]"
_DOT_ATOM = rf"{_ATEXT}+(?:\.{_ATEXT}+)*"
_QUOTED_LOCAL = r'"(?:[^"\\\r\n]|\\.)*"'
_DOMAIN_LITERAL = r"\[[^\[\]\\\s]*\]"
_ADDR_SPEC = re.compile(rf"(?:{_DOT_ATOM}|{_QUOTED_LOCAL})@(?:{_DOT_ATOM}|{_DOMAIN_LITERAL})")
# Something a reader would take for an address inside display text.
_ADDRESS_SHAPE = re.compile(r"[\w.!#$%&'*+/=?^`{|}~\-]+@[\w\-]+(?:\.[\w\-]+)+")


@dataclass(frozen=True, slots=True)
class Mailbox:
    """One mailbox: `address` lower-case; `display_name` RFC 2047 decoded."""

    address: str
    display_name: str
    comments: tuple[str, ...] = ()


class AddressSyntaxError(ValueError):
    """The header is not a mailbox-list this reader accepts."""


def _quoted(text: str, pos: int) -> tuple[str, int]:
    out: list[str] = []
    pos += 1
    while pos < len(text):
        ch = text[pos]
        if ch == "\\" and pos + 1 < len(text):
            out.append(text[pos + 1])
            pos += 2
        elif ch == '"':
            return "".join(out), pos + 1
        else:
            out.append(ch)
            pos += 1
    raise AddressSyntaxError("unterminated quoted string")


def _comment(text: str, pos: int) -> tuple[str, int]:
    out: list[str] = []
    depth = 0
    while pos < len(text):
        ch = text[pos]
        if ch == "\\" and pos + 1 < len(text):
            out.append(text[pos + 1])
            pos += 2
            continue
        if ch == "(":
            depth += 1
            if depth > 1:
                out.append(ch)
        elif ch == ")":
            depth -= 1
            if depth == 0:
                return "".join(out), pos + 1
            out.append(ch)
        else:
            out.append(ch)
        pos += 1
    raise AddressSyntaxError("unterminated comment")


def _angle(text: str, pos: int) -> tuple[str, int]:
    out: list[str] = []
    pos += 1
    while pos < len(text):
        ch = text[pos]
        if ch == '"':
            quoted, pos = _quoted(text, pos)
            out.append('"' + quoted.replace("\\", "\\\\").replace('"', '\\"') + '"')
            continue
        if ch == ">":
            return "".join(out).strip(), pos + 1
        if ch in "<,;":
            raise AddressSyntaxError("bad angle address")
        out.append(ch)
        pos += 1
    raise AddressSyntaxError("unterminated angle address")


def _finish(
    words: list[str], bare: list[str], angle: str | None, comments: list[str]
) -> Mailbox | None:
    if angle is None:
        spec = "".join(bare).strip()
        if not spec and not words:
            return None  # an empty list element, allowed by RFC 5322 §4.4
        if words or " " in spec or "\t" in spec:
            raise AddressSyntaxError("address without angle brackets has a phrase")
        display = ""
    else:
        if "".join(bare).strip():
            words.append("".join(bare).strip())
        spec = angle
        display = " ".join(" ".join(words).split())
    if not _ADDR_SPEC.fullmatch(spec):
        raise AddressSyntaxError("bad address")
    return Mailbox(spec.lower(), decode_words(display), tuple(comments))


def parse_mailbox_list(value: str) -> list[Mailbox]:
    """Every mailbox in `value`, in order; raises AddressSyntaxError."""
    result: list[Mailbox] = []
    words: list[str] = []
    bare: list[str] = []
    comments: list[str] = []
    angle: str | None = None
    pos = 0
    while pos < len(value):
        ch = value[pos]
        if ch == '"':
            quoted, pos = _quoted(value, pos)
            if "".join(bare).strip():
                words.append("".join(bare).strip())
            bare = []
            words.append(quoted)
            continue
        if ch == "(":
            text, pos = _comment(value, pos)
            comments.append(text)
            bare.append(" ")
            continue
        if ch == "<":
            if angle is not None:
                raise AddressSyntaxError("two angle addresses in one mailbox")
            if "".join(bare).strip():
                words.append("".join(bare).strip())
            bare = []
            angle, pos = _angle(value, pos)
            continue
        if ch == ",":
            mailbox = _finish(words, bare, angle, comments)
            if mailbox is not None:
                result.append(mailbox)
            words, bare, comments, angle = [], [], [], None
        elif ch in ":;<>[]\\" and angle is None and not (ch in "[]" and "@" in "".join(bare)):
            raise AddressSyntaxError("group or special character in mailbox list")
        elif angle is not None and not ch.isspace():
            raise AddressSyntaxError("text after angle address")
        else:
            bare.append(ch)
        pos += 1
    mailbox = _finish(words, bare, angle, comments)
    if mailbox is not None:
        result.append(mailbox)
    return result


def _normalised(text: str) -> str:
    """NFKC (folds full-width '＠' to '@'), without invisible format characters."""
    folded = unicodedata.normalize("NFKC", text)
    return "".join(ch for ch in folded if unicodedata.category(ch) != "Cf")


def claims_other_address(mailbox: Mailbox, raw_value: str) -> str | None:
    """An address shown in the display name (or a comment) that is not the mailbox's.

    Readers see the display name first: `"boss@moh.gov.example" <evil@x>` shows
    the boss's address. Both the sent and the RFC 2047 decoded text are checked.
    Returns the claimed address, or None.
    """
    texts = [mailbox.display_name, decode_words(raw_value), *mailbox.comments]
    for text in texts:
        for match in _ADDRESS_SHAPE.finditer(_normalised(text)):
            claimed = match.group().strip(".").lower()
            if claimed != mailbox.address:
                return claimed
    return None

"""The folders every employee has, and which mailbox names are acceptable. Pure.

Owns: the standard folder set (docs/CONTRACT.md §7: INBOX, Sent, Drafts, Trash,
Receipts) with their SPECIAL-USE attributes (RFC 6154), the hierarchy
delimiter, and name validation. Must not: touch the database.

Names are Unicode text as pymap hands them over (RFC 3501 §5.1.3 modified
UTF-7 is decoded by the protocol layer). `INBOX` is case-insensitive
(RFC 3501 §5.1); every other name is case-sensitive.
"""

from __future__ import annotations

from dataclasses import dataclass

DELIMITER = "/"
INBOX = "INBOX"
SENT = "Sent"
DRAFTS = "Drafts"
TRASH = "Trash"
RECEIPTS = "Receipts"
MAX_NAME_CHARS = 255
MAX_DEPTH = 16


@dataclass(frozen=True)
class StandardFolder:
    name: str
    special_use: str | None  # RFC 6154 attribute, or None


STANDARD_FOLDERS = (
    StandardFolder(INBOX, None),
    StandardFolder(SENT, "\\Sent"),
    StandardFolder(DRAFTS, "\\Drafts"),
    StandardFolder(TRASH, "\\Trash"),
    StandardFolder(RECEIPTS, None),
)
STANDARD_NAMES = frozenset(f.name for f in STANDARD_FOLDERS)


class MailboxNameError(ValueError):
    """A mailbox name the gateway does not accept; the text is safe to show."""


def normalize(name: str) -> str:
    """`INBOX` in any case becomes `INBOX` (also as the first level of a path)."""
    head, sep, rest = name.partition(DELIMITER)
    if head.upper() == INBOX:
        return INBOX + sep + rest
    return name


def check_name(name: str) -> str:
    """The normalized name, or MailboxNameError: empty, too long or too deep, an
    empty level, a control character (CR, LF, NUL, ...), or a LIST wildcard."""
    if not name:
        raise MailboxNameError("mailbox name is empty")
    if len(name) > MAX_NAME_CHARS:
        raise MailboxNameError("mailbox name is too long")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F or 0x80 <= ord(ch) < 0xA0 for ch in name):
        raise MailboxNameError("mailbox name contains a control character")
    if "*" in name or "%" in name:
        raise MailboxNameError("mailbox name contains a wildcard")
    levels = name.split(DELIMITER)
    if any(level.strip() == "" for level in levels):
        raise MailboxNameError("mailbox name has an empty level")
    if len(levels) > MAX_DEPTH:
        raise MailboxNameError("mailbox name is nested too deeply")
    return normalize(name)


def is_protected(name: str) -> bool:
    """Standard folders may not be deleted or renamed (INBOX rename aside, which
    RFC 3501 §6.3.5 defines specially and we refuse)."""
    return normalize(name) in STANDARD_NAMES

"""The mailbox store's values: errors, mailbox and mail rows, flag and time rules.

Owns: what the mailbox store hands out (`MailboxInfo`, `MailboxStatus`,
`MailRow`, `Changes`, `ContentFacts`), its errors, and the pure flag checks
(system flags, keyword atoms). Must not: touch the database.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.store.models import Mailbox, MailboxMessage, MailContent

SYSTEM_FLAGS = frozenset({"\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft"})
MAX_KEYWORDS = 64
# RFC 3501 §9: atom-specials (and anything outside printable ASCII).
_NOT_ATOM = frozenset('(){ %*"\\]') | frozenset(chr(c) for c in range(0x21)) | {"\x7f"}


class MailboxError(Exception):
    """A refused mailbox operation; the text is safe to show a client."""


class NoSuchMailbox(MailboxError):
    pass


class MailboxExists(MailboxError):
    pass


@dataclass(frozen=True)
class MailboxInfo:
    id: int
    name: str
    special_use: str | None
    uid_validity: int
    subscribed: bool


@dataclass(frozen=True)
class MailboxStatus:
    exists: int
    recent: int
    unseen: int
    first_unseen: int | None  # message sequence number
    next_uid: int
    uid_validity: int
    highest_modseq: int


@dataclass(frozen=True)
class MailRow:
    """One mail of a mailbox, without its bytes."""

    uid: int
    flags: frozenset[str]
    internal_date: dt.datetime
    content_id: int
    size: int
    kind: str
    recent: bool


@dataclass(frozen=True)
class Changes:
    highest_modseq: int
    updated: list[MailRow]
    expunged: list[int]


@dataclass(frozen=True)
class ContentFacts:
    """What a stored content is, for the access trail."""

    content_id: int
    kind: str
    registry: str | None
    trace_code: str | None


def parse_time(value: str) -> dt.datetime:
    """A stored time (`format_time`'s form); fromisoformat is C, strptime is not."""
    if len(value) == 27 and value[-1] == "Z":
        return dt.datetime.fromisoformat(value[:-1]).replace(tzinfo=dt.UTC)
    return dt.datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC)


def format_time(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def flags_text(flags: Iterable[str]) -> str:
    return " ".join(sorted(set(flags)))


def flags_of(textual: str) -> frozenset[str]:
    return frozenset(textual.split())


def apply_flags(current: frozenset[str], flags: frozenset[str], mode: str) -> frozenset[str]:
    """RFC 3501 §6.4.6: "add" (+FLAGS), "remove" (-FLAGS) or "replace" (FLAGS)."""
    if mode == "add":
        return current | flags
    if mode == "remove":
        return current - flags
    if mode == "replace":
        return flags
    raise ValueError(f"unknown flag mode {mode!r}")


def check_flags(flags: Iterable[str]) -> frozenset[str]:
    """System flags and at most MAX_KEYWORDS atom keywords; MailboxError otherwise."""
    out = frozenset(flags)
    keywords = [f for f in out if not f.startswith("\\")]
    if len(keywords) > MAX_KEYWORDS:
        raise MailboxError("too many keywords")
    for flag in out:
        if flag.startswith("\\"):
            if flag not in SYSTEM_FLAGS:
                raise MailboxError("unknown system flag")
        elif not flag or len(flag) > 100 or not flag.isascii() or any(c in _NOT_ATOM for c in flag):
            raise MailboxError("invalid flag")  # keywords are atoms (RFC 3501 §9)
    return out


# The columns `row_of` reads, in its order: a Core select of these builds no ORM objects.
MAIL_ROW_COLUMNS = (
    MailboxMessage.uid,
    MailboxMessage.flags,
    MailboxMessage.internal_date,
    MailboxMessage.content_id,
    MailContent.size,
    MailContent.kind,
    MailboxMessage.recent,
)


def row_of(values: Any) -> MailRow:
    """A MailRow from a result row of MAIL_ROW_COLUMNS."""
    uid, flags, internal_date, content_id, size, kind, recent = values
    return MailRow(
        uid, flags_of(flags), parse_time(internal_date), content_id, size, kind, bool(recent)
    )


def mailbox_info(box: Mailbox) -> MailboxInfo:
    return MailboxInfo(box.id, box.name, box.special_use, box.uid_validity, box.subscribed)


def chunks(items: Sequence[int], size: int) -> Iterable[Sequence[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]

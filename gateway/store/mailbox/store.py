"""Mailboxes in the SQL store: folders, UIDs, flags, expunges, encrypted contents.

Owns: `MailboxStore`, the one object callers hold, made of its parts: folders
(`folder_ops`), state and change feed (`feed`), contents (`contents`), a
client's changes (`edits`), over shared transactions (`base`) and the
in-transaction building blocks (`writes`); together they are every read and
write of `mailboxes`, `mailbox_messages`, `mailbox_expunges` and `mail_contents`,
the UID and modseq counters, and the change notices sent after commits. Must
not: speak IMAP (gateway.imap adapts this to pymap) or decide who may read what
(callers pass the employee id they authenticated).

Contracts:
- UIDs (RFC 3501 §2.3.1.1) are allocated by one `UPDATE mailboxes SET next_uid =
  next_uid + n, highest_modseq = highest_modseq + 1 ... RETURNING`, inside the
  transaction that inserts the rows, so they are strictly ascending and never
  reused, on SQLite (one writer) and PostgreSQL (row lock) alike, across nodes.
- Every change (append, flags, expunge) takes the next modseq of its mailbox;
  `changes(mailbox, since)` returns what changed after `since`, so a session
  learns of other sessions' work (and IDLE is woken by the notifier).
- Mail bytes are blobs encrypted at rest (gateway.store.blobs); a content is a
  list of blob ids read in order, so a delivered copy reuses the stored original
  (prefix + original + suffix) and COPY/MOVE never duplicate bytes. `meta` is an
  opaque description (header, cached ENVELOPE/BODYSTRUCTURE) made by the caller's
  `describe` function and also encrypted.
- Database trouble raises `StoreUnavailable` (nothing was changed); the notices go
  out only after a commit (in-process at once, and on PostgreSQL by NOTIFY, which
  PostgreSQL delivers at commit).
"""

from gateway.store.errors import StoreUnavailable
from gateway.store.mailbox.base import StoreBase
from gateway.store.mailbox.contents import ContentReads
from gateway.store.mailbox.edits import MailEdits
from gateway.store.mailbox.feed import ChangeFeed
from gateway.store.mailbox.folder_ops import FolderOps
from gateway.store.mailbox.folders import INBOX, MailboxNameError
from gateway.store.mailbox.records import (
    MAX_KEYWORDS,
    SYSTEM_FLAGS,
    Changes,
    ContentFacts,
    MailboxError,
    MailboxExists,
    MailboxInfo,
    MailboxStatus,
    MailRow,
    NoSuchMailbox,
    apply_flags,
    check_flags,
    flags_of,
    flags_text,
    format_time,
    parse_time,
)
from gateway.store.mailbox.writes import (
    PURPOSE_MAIL,
    PURPOSE_META,
    NewCopy,
    WriteScope,
    append_in,
    ensure_folders_in,
    ensure_folders_many,
    expunge_in,
    file_copies_in,
    insert_content,
    lock_mailboxes,
    new_uid_validity,
)


class MailboxStore(FolderOps, ChangeFeed, ContentReads, MailEdits):
    """Mailboxes of the directory's employees; see the module docstring.

    The parts share `StoreBase` (sessions, cipher, notifier, transactions):
    folders (`folder_ops`), state and change feed (`feed`), contents
    (`contents`), a client's changes (`edits`).
    """


__all__ = [
    "INBOX",
    "MAX_KEYWORDS",
    "PURPOSE_MAIL",
    "PURPOSE_META",
    "SYSTEM_FLAGS",
    "Changes",
    "ContentFacts",
    "MailRow",
    "MailboxError",
    "MailboxExists",
    "MailboxInfo",
    "MailboxNameError",
    "MailboxStatus",
    "MailboxStore",
    "NewCopy",
    "NoSuchMailbox",
    "StoreBase",
    "StoreUnavailable",
    "WriteScope",
    "append_in",
    "apply_flags",
    "check_flags",
    "ensure_folders_in",
    "ensure_folders_many",
    "expunge_in",
    "file_copies_in",
    "flags_of",
    "flags_text",
    "format_time",
    "insert_content",
    "lock_mailboxes",
    "new_uid_validity",
    "parse_time",
]

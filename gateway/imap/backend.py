"""The pymap backend over Barid's mailbox store, by its parts (one import place).

Owns: nothing of its own; it names the parts that adapt gateway.store.mailbox.store
to pymap's interfaces (pymap 0.36.7, pinned): `context` (settings, shared
state, store errors as IMAP answers), `login`, `session` (batched commands and
the access trail before any body byte), `mailbox` (folder set, selected
mailbox), `message` (stored descriptions, bodies). Must not: grow code here.
"""

from __future__ import annotations

from gateway.imap.context import (
    MAX_SELECTED_SETS,
    PARSE_IN_THREAD_BYTES,
    BaridImapConfig,
    ImapContext,
    Refused,
    Unavailable,
    client_address,
)
from gateway.imap.login import Identity, Login
from gateway.imap.mailbox import MailboxData, MailboxSet
from gateway.imap.message import LoadedMessage, Message, header_fields
from gateway.imap.session import Session

__all__ = [
    "MAX_SELECTED_SETS",
    "PARSE_IN_THREAD_BYTES",
    "BaridImapConfig",
    "Identity",
    "ImapContext",
    "LoadedMessage",
    "Login",
    "MailboxData",
    "MailboxSet",
    "Message",
    "Refused",
    "Session",
    "Unavailable",
    "client_address",
    "header_fields",
]

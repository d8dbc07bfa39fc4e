"""The alert mailer of a process other than `barid serve` (`barid alerts scan`).

Owns: building an `AlertMailer` from the settings, the database sessions and the
gateway keys alone: the mailbox store with the blob key, the message description
made in this process, and the same per-domain DKIM signers as the running
gateway, so the messages it files are byte for byte those the gateway would
file. Mailbox change notices go out through the database (PostgreSQL NOTIFY),
so a running gateway's IMAP sessions see the new messages. Must not: start
listeners or workers. Failure behaviour: none of its own; the mailer's apply.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.alerts.mailer import AlertMailer
from gateway.config import Settings
from gateway.imap.mailbox import describe_off_loop
from gateway.serve.workers import DkimSigners
from gateway.store.blobs import BLOB_KEK_PURPOSE, BlobCipher
from gateway.store.mailbox.notify import MailboxNotifier
from gateway.store.mailbox.store import MailboxStore
from keys.gateway_keys import GatewayKeys, derive_key


def standalone_mailer(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], keys: GatewayKeys
) -> AlertMailer:
    cipher = BlobCipher(derive_key(keys.master_key, BLOB_KEK_PURPOSE))
    mailboxes = MailboxStore(sessions, cipher, MailboxNotifier())
    return AlertMailer(
        settings.alerts, sessions, mailboxes, cipher, describe=describe_off_loop,
        hostname=settings.server.hostname,
        signer_for=DkimSigners(keys, settings.keys.dkim_selector),
    )  # fmt: skip

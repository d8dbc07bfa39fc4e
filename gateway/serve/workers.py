"""The background workers of `barid serve`: local delivery and receipts, remote delivery.

Owns: building the mail worker (filing copies, writing receipts; its parse
process), starting the relay worker (copies to peers and agency servers) and
waking both when a message is accepted, the DKIM signers per agency domain, and
reading the agency mail servers' passwords. Must not: bind sockets or decide
anything about a message.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.config import Settings
from gateway.delivery.evidence import EvidenceSigner
from gateway.delivery.imap_target import ImapServer
from gateway.delivery.local import MailWorker
from gateway.delivery.receipt_writer import Summaries
from gateway.delivery.relay import RelayWorker
from gateway.federation.peers import Federation
from gateway.serve.sockets import StartupError
from gateway.stamping.dkim import DkimSigner
from gateway.store.blobs import BlobCipher
from gateway.store.mailbox.store import MailboxStore
from gateway.store.messages import MessageStore
from keys.gateway_keys import GatewayKeys

log = logging.getLogger("barid.serve")
# Run by the mail worker's parse process: whole mails, and copies whose original
# is parsed once per message (gateway.imap.describe_copy).
DESCRIBE = "gateway.imap.describe_copy:describe_job"


class DkimSigners:
    """One DKIM signer per agency domain, made when first needed (None: cannot sign)."""

    def __init__(self, keys: GatewayKeys, selector: str) -> None:
        self._keys = keys
        self._selector = selector
        self._signers: dict[str, DkimSigner] = {}

    def __call__(self, domain: str) -> DkimSigner | None:
        if domain not in self._signers:
            try:
                self._signers[domain] = DkimSigner(self._keys, domain, self._selector)
            except ValueError:  # not a DNS name DKIM can sign for
                log.warning("receipts for this agency domain cannot be DKIM-signed")
                return None
        return self._signers[domain]


def build_mail_worker(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    cipher: BlobCipher,
    mailboxes: MailboxStore,
    *,
    signer_for: Callable[[str], DkimSigner | None],
    verify_url: Callable[[str], str],
    audit_key: bytes,
    evidence: EvidenceSigner | None = None,
) -> MailWorker:
    """The local delivery and receipts worker, not started yet (the transfer
    listener needs its parse process first)."""
    return MailWorker(
        sessions,
        cipher,
        mailboxes,
        describe=DESCRIBE,
        signer_for=signer_for,
        verify_url=verify_url,
        hostname=settings.server.hostname,
        audit_key=audit_key,
        summaries=Summaries(
            threshold=settings.receipts.summary_threshold,
            deadline=dt.timedelta(minutes=settings.receipts.summary_deadline_minutes),
            signer=evidence,
        ),
    )


def start_relay_worker(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    cipher: BlobCipher,
    federation: Federation,
    *,
    store: MessageStore,
    worker: MailWorker,
    signer_for: Callable[[str], DkimSigner | None],
    audit_key: bytes,
) -> RelayWorker:
    """The remote delivery worker, started; an accepted message wakes it and the
    mail worker."""
    relay = RelayWorker(
        sessions,
        cipher,
        federation,
        mail_servers(settings),
        delivery=settings.delivery,
        signer_for=signer_for,
        tls_cert=settings.tls_cert,
        tls_key=settings.tls_key,
        hostname=settings.server.hostname,
        audit_key=audit_key,
        on_receipts=worker.wake,
    )

    def accepted() -> None:
        worker.wake()
        relay.wake()

    store.on_accepted = accepted
    relay.start()
    return relay


def mail_servers(settings: Settings) -> dict[str, ImapServer]:
    """The agencies' own IMAP servers, passwords read from their files."""
    out = {}
    for name, conf in settings.mailservers.items():
        try:
            password = Path(conf.password_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise StartupError(
                f"mailservers.{name}: cannot read password_file {conf.password_file}"
                f" ({exc.strerror})"
            ) from None
        try:
            out[name] = ImapServer(
                name=name,
                host=conf.host,
                port=conf.port,
                tls=conf.tls,
                ca_file=Path(conf.tls_ca) if conf.tls_ca else None,
                server_name=conf.tls_server_name,
                login=conf.login,
                password=password,
                folder=conf.folder,
                timeout=settings.delivery.timeout_seconds,
            )
        except ValueError as exc:
            raise StartupError(f"mailservers.{name}: {exc}") from None
    return out

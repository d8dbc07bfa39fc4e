"""Mail clients of a cluster test: they dial the balancer from a loopback
address of their own (127.0.0.2 by default), so the nodes' records of the
client's address can be told apart from the balancer's (127.0.0.3) and from a
direct connection (127.0.0.1).

- `submit(...)`: SMTP submission (STARTTLS + AUTH) of a list of messages,
  each sent again until a 250 comes back (a node killed mid-message never
  acknowledged it); every 250 is recorded with its registry number;
- `read_inbox(...)`: IMAP (STARTTLS + LOGIN), every message of INBOX fetched
  whole (`BODY.PEEK[]`, which the access trail records); retried on errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import imaplib
import socket
import ssl
from dataclasses import dataclass
from typing import Any

import aiosmtplib

CLIENT_SOURCE = "127.0.0.2"


@dataclass(frozen=True)
class Account:
    address: str
    password: str


async def submit(port: int, tls: ssl.SSLContext, sender: Account, recipients: list[str],
                 messages: list[bytes], acked: list[tuple[str, bytes]],
                 source: str = CLIENT_SOURCE, attempts: int = 50) -> None:  # fmt: skip
    """Send each message until acknowledged; reconnect whenever the connection dies."""
    pending = list(messages)
    for _ in range(attempts):
        if not pending:
            return
        smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=True, tls_context=tls,
                               timeout=15, source_address=(source, 0))  # fmt: skip
        try:
            await smtp.connect()
            await smtp.login(sender.address, sender.password)
            while pending:
                await smtp.mail(sender.address)
                for rcpt in recipients:
                    await smtp.rcpt(rcpt)
                response = await smtp.data(pending[0])
                if response.code == 250:
                    acked.append((response.message.split()[-1], pending.pop(0)))
        except (aiosmtplib.SMTPException, OSError):
            await asyncio.sleep(0.1)  # not acknowledged: send it again
        finally:
            smtp.close()
    raise AssertionError(f"{len(pending)} message(s) never acknowledged")


class _SourcedIMAP(imaplib.IMAP4):
    """imaplib's client, dialling from a chosen local address."""

    def __init__(self, host: str, port: int, source: str, timeout: float) -> None:
        self._source = source
        super().__init__(host, port, timeout)

    def _create_socket(self, timeout: float | None) -> socket.socket:
        return socket.create_connection((self.host, self.port), timeout,
                                        source_address=(self._source, 0))  # fmt: skip


def _read_once(port: int, tls: ssl.SSLContext, account: Account, source: str) -> int:
    conn = _SourcedIMAP("127.0.0.1", port, source, 15)
    try:
        conn.starttls(ssl_context=tls)
        conn.login(account.address, account.password)
        status, data = conn.select("INBOX", readonly=True)
        if status != "OK":
            raise imaplib.IMAP4.error(f"SELECT: {status}")
        count = int(data[0] or 0)
        if count:
            status, _ = conn.fetch("1:*", "(BODY.PEEK[])")
            if status != "OK":
                raise imaplib.IMAP4.error(f"FETCH: {status}")
        conn.logout()
        return count
    finally:
        with contextlib.suppress(OSError):
            conn.shutdown()


async def read_inbox(port: int, tls: ssl.SSLContext, account: Account,
                     source: str = CLIENT_SOURCE, attempts: int = 50) -> int:  # fmt: skip
    """How many messages INBOX held, every one of them fetched whole."""
    last: Any = None
    for _ in range(attempts):
        try:
            return await asyncio.to_thread(_read_once, port, tls, account, source)
        except (imaplib.IMAP4.error, imaplib.IMAP4.abort, OSError) as exc:
            last = exc
            await asyncio.sleep(0.1)
    raise AssertionError(f"INBOX of {account.address} never read: {last!r}")

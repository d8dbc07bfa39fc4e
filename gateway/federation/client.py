"""Sending to a peer's transfer listener: SMTP with mandatory, verified mutual TLS.

Owns: one SMTP connection to a peer (aiosmtplib) carrying a batch of
transfers, and the classification of each answer into delivered, temporary or
permanent. Must not: touch the queue or the database (gateway.delivery.relay
records outcomes), or sign anything (the caller hands over signed bytes).

Contract: `send_batch(peer, items, ..., seconds=)` (each SMTP step bounded by
`seconds`) never raises for network or peer trouble; it returns one
`Outcome` per item, in order. TLS is never optional:
a peer that does not offer STARTTLS, a handshake that fails, or a certificate
that does not match the peer's trust (pins or CA) ends the connection before
MAIL FROM, with every item temporary and `trust_failure` set on a certificate
problem (the caller alerts). A 5xx reply to MAIL, RCPT or DATA is permanent
for that item; 4xx, timeouts and lost connections are temporary.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import aiosmtplib

from gateway.federation.peers import Peer

log = logging.getLogger("barid.relay")


@dataclass(frozen=True)
class Transfer:
    mail_from: str  # "" for a notification (null reverse-path)
    recipient: str
    data: bytes = b""
    # When set, makes the bytes just before they are sent (so that preparing one
    # transfer overlaps sending others); an exception there fails this item only.
    prepare: Callable[[], Awaitable[bytes]] | None = None


@dataclass(frozen=True)
class Outcome:
    kind: str  # "delivered" | "temporary" | "permanent"
    reply: str  # the peer's reply ("250 2.0.0 ...") or what went wrong, one ASCII line
    trust_failure: bool = False


def _line(text: str) -> str:
    return " ".join(text.split()).encode("ascii", "replace").decode("ascii")[:300]


def _from_reply(code: int, message: str) -> Outcome:
    reply = _line(f"{code} {message}")
    if 200 <= code < 300:
        return Outcome("delivered", reply)
    return Outcome("permanent" if code >= 500 else "temporary", reply)


async def _open(
    peer: Peer, cert: Path, key: Path, hostname: str, limit: float
) -> tuple[aiosmtplib.SMTP | None, Outcome | None]:
    """A connected client after verified STARTTLS, or the outcome for every item."""
    try:
        context = peer.client_context(cert, key)
    except (ssl.SSLError, OSError, ValueError) as exc:
        return None, Outcome("temporary", _line(f"TLS set-up failed: {exc}"))
    client = aiosmtplib.SMTP(
        hostname=peer.host,
        port=peer.port,
        local_hostname=hostname,
        start_tls=False,
        use_tls=False,
        timeout=limit,
    )
    try:
        await client.connect()
        await client.ehlo()
        if not client.supports_extension("starttls"):
            client.close()
            return None, Outcome("temporary", "peer does not offer STARTTLS; nothing sent")
        await client.starttls(tls_context=context, server_hostname=peer.server_name)
    except ssl.SSLCertVerificationError as exc:
        client.close()
        return None, Outcome(
            "temporary", _line(f"peer certificate not trusted: {exc.verify_message}"), True
        )
    except (aiosmtplib.SMTPException, OSError, TimeoutError, ssl.SSLError) as exc:
        client.close()
        cause = exc.__cause__ if isinstance(exc.__cause__, ssl.SSLError) else exc
        if isinstance(cause, ssl.SSLCertVerificationError):
            return None, Outcome(
                "temporary", _line(f"peer certificate not trusted: {cause.verify_message}"), True
            )
        return None, Outcome("temporary", _line(f"connection failed: {type(exc).__name__} {exc}"))
    transport = client.transport
    ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
    der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    assert peer.trust is not None
    if not der or not peer.trust.accepts(der):
        client.close()
        return None, Outcome("temporary", "peer certificate does not match its pins", True)
    return client, None


async def send_batch(
    peer: Peer,
    items: Sequence[Transfer],
    *,
    cert: Path,
    key: Path,
    hostname: str,
    seconds: float,
) -> list[Outcome]:
    """Send `items` over one connection to `peer` (see the module contract)."""
    if not items:
        return []
    if not peer.ready:
        return [
            Outcome("temporary", f"peer {peer.name} has no host or tls_trust configured")
        ] * len(items)
    client, failed = await _open(peer, cert, key, hostname, seconds)
    if client is None:
        assert failed is not None
        return [failed] * len(items)
    out: list[Outcome] = []
    try:
        for index, item in enumerate(items):
            try:
                out.append(await _send_one(client, item))
            except (aiosmtplib.SMTPServerDisconnected, OSError, TimeoutError) as exc:
                lost = Outcome("temporary", _line(f"connection lost: {type(exc).__name__} {exc}"))
                out += [lost] * (len(items) - index)
                return out
        with contextlib.suppress(aiosmtplib.SMTPException, OSError, TimeoutError):
            await asyncio.wait_for(client.quit(), timeout=5)
        return out
    finally:
        client.close()


async def _send_one(client: aiosmtplib.SMTP, item: Transfer) -> Outcome:
    data = item.data
    if item.prepare is not None:
        try:
            data = await item.prepare()
        except Exception:
            log.exception("transfer could not be prepared")
            return Outcome("temporary", "copy could not be prepared (see the gateway log)")
    try:
        await client.mail(item.mail_from)
    except aiosmtplib.SMTPResponseException as exc:
        await _reset(client)
        return _from_reply(exc.code, exc.message)
    try:
        await client.rcpt(item.recipient)
    except aiosmtplib.SMTPResponseException as exc:
        await _reset(client)
        return _from_reply(exc.code, exc.message)
    try:
        response = await client.data(data)
    except aiosmtplib.SMTPResponseException as exc:
        if isinstance(exc, aiosmtplib.SMTPServerDisconnected):
            raise
        return _from_reply(exc.code, exc.message)
    return _from_reply(response.code, response.message)


async def _reset(client: aiosmtplib.SMTP) -> None:
    with contextlib.suppress(aiosmtplib.SMTPResponseException):
        await client.rset()


@dataclass(frozen=True)
class Probe:
    """What `barid peer check` reports about one connection attempt."""

    ok: bool
    detail: str  # what failed, or "transfer port ready"
    tls_version: str = ""
    cipher: str = ""
    certificate_subject: str = ""
    certificate_sha256: str = ""
    ehlo_after_tls: str = ""


async def probe(peer: Peer, *, cert: Path, key: Path, hostname: str, seconds: float) -> Probe:
    """Connect, STARTTLS with our client certificate, check the peer's certificate
    against its trust, EHLO again (the peer accepted our certificate), QUIT.
    Sends no mail."""
    from cryptography import x509

    from gateway.federation.trust import fingerprint

    if not peer.ready:
        return Probe(False, f"peer {peer.name} has no host or tls_trust configured")
    client, failed = await _open(peer, cert, key, hostname, seconds)
    if client is None:
        assert failed is not None
        return Probe(False, failed.reply)
    try:
        transport = client.transport
        ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
        assert ssl_object is not None
        der = ssl_object.getpeercert(binary_form=True) or b""
        subject = x509.load_der_x509_certificate(der).subject.rfc4514_string()
        version, cipher = str(ssl_object.version()), str(ssl_object.cipher()[0])
        try:
            reply = await client.ehlo()
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            return Probe(
                False,
                _line(f"peer closed the connection after TLS (our certificate refused?): {exc}"),
                version,
                cipher,
                subject,
                fingerprint(der),
            )
        with contextlib.suppress(aiosmtplib.SMTPException, OSError, TimeoutError):
            await asyncio.wait_for(client.quit(), timeout=5)
        if reply.code != 250:
            return Probe(
                False, _line(f"EHLO after TLS refused: {reply.code} {reply.message}"),
                version, cipher, subject, fingerprint(der),
            )  # fmt: skip
        return Probe(True, "transfer port ready", version, cipher, subject, fingerprint(der),
                     _line(f"{reply.code} {reply.message.splitlines()[0]}"))  # fmt: skip
    finally:
        client.close()

"""Faults between gateways: a peer down, answering 4xx then 250, 5xx, presenting the
wrong certificate, speaking only plaintext; strangers and forgeries at our transfer
port; a transfer repeated after a lost acknowledgement. Real sockets and TLS; the
fault-injecting peers are small aiosmtpd servers holding the region's identity."""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
import subprocess
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiosmtplib
import pytest
from aiosmtpd.smtp import SMTP
from cryptography.hazmat.primitives import serialization
from sqlalchemy import func, select, update

from gateway.federation.client import Transfer, send_batch
from gateway.federation.trust import load_peer_trust, transfer_server_context
from gateway.store.models import (
    AuditEvent,
    DeliveryQueueEntry,
    InboundCopy,
    Message,
    MessageCopy,
    ReceiptJob,
)
from keys.tls import make_dev_certificate
from testkit.messages import pgp_mime

REGISTRAR = "registrar@moh.gov.example"
REGISTRY = "registry@region.gov.example"


async def until(check: Callable[[], Any], seconds: float = 30.0) -> Any:
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        value = await check()
        if value:
            return value
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.1)


async def scalar(live: Any, statement: Any) -> Any:
    async with live.gateway.sessions() as s:
        return await s.scalar(statement)


async def submit(central: Any, gnupghome: Path) -> str:
    code = central.credentials[REGISTRAR]["code"]
    raw = pgp_mime(gnupghome, REGISTRAR, REGISTRAR, [REGISTRY],
                   extra=[("Barid-Employee-Code", code)])  # fmt: skip
    reply, text = await central.send(REGISTRAR, [REGISTRY], raw)
    assert reply == 250, text
    return text.split()[-1]


async def entry(central: Any) -> Any:
    async with central.gateway.sessions() as s:
        return (await s.execute(select(DeliveryQueueEntry))).scalar_one()


class ScriptedPeer:
    """A peer's transfer port that answers DATA from a script (then 250), with
    STARTTLS and a client certificate required (central's, pinned)."""

    def __init__(self, replies: list[str]) -> None:
        self.replies = list(replies)
        self.received: list[bytes] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.replies:
            return self.replies.pop(0)
        self.received.append(envelope.original_content)
        return "250 2.0.0 Delivered"


@contextlib.asynccontextmanager
async def scripted_peer(
    pair: Any, handler: Any, cert: Path | None = None, key: Path | None = None
) -> AsyncIterator[None]:
    trust = load_peer_trust("central", pair.central_data / "tls" / "cert.pem", [], "localhost")
    context = transfer_server_context(
        cert or pair.region_data / "tls" / "cert.pem",
        key or pair.region_data / "tls" / "key.pem",
        [trust],
    )
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(handler, tls_context=context, require_starttls=True, decode_data=False),
        "127.0.0.1",
        pair.region_port,
    )
    try:
        yield
    finally:
        server.close()
        await server.wait_closed()


async def test_peer_down_then_back_is_delivered_once(pair: Any, gnupghome: Path) -> None:
    central = await pair.start("central")
    registry = await submit(central, gnupghome)
    await until(lambda: scalar(central, select(DeliveryQueueEntry.attempts)
                               .where(DeliveryQueueEntry.attempts >= 2)))  # fmt: skip
    waiting = await entry(central)
    assert waiting.state in ("queued", "delivering") and "connection failed" in waiting.last_error
    region = await pair.start("region")
    await until(lambda: scalar(region, select(func.count()).select_from(InboundCopy)))
    await until(lambda: scalar(central, select(ReceiptJob.id).where(ReceiptJob.kind == "delivery")))
    assert (await entry(central)).state == "delivered"
    assert await scalar(region, select(func.count()).select_from(InboundCopy)) == 1
    assert await scalar(region, select(InboundCopy.registry_number)) == registry


async def test_peer_answering_4xx_then_250(pair: Any, gnupghome: Path) -> None:
    peer = ScriptedPeer(["451 4.3.0 Try again later"])
    async with scripted_peer(pair, peer):
        central = await pair.start("central")
        await submit(central, gnupghome)
        await until(lambda: scalar(central, select(DeliveryQueueEntry.id)
                                   .where(DeliveryQueueEntry.state == "delivered")))  # fmt: skip
    done = await entry(central)
    assert done.attempts == 2 and len(peer.received) == 1
    assert b"DKIM-Signature: v=1; a=rsa-sha256" in peer.received[0]
    assert b"\r\nBarid-Trace: " in peer.received[0]


async def test_peer_answering_5xx_gives_a_non_delivery_receipt(pair: Any, gnupghome: Path) -> None:
    peer = ScriptedPeer(["554 5.7.1 Refused by the far side"])
    async with scripted_peer(pair, peer):
        central = await pair.start("central")
        await submit(central, gnupghome)
        job = await until(lambda: scalar(central, select(ReceiptJob)
                                         .where(ReceiptJob.kind == "non-delivery")))  # fmt: skip
    assert job.reason == "recipient-refused" and job.detail.startswith("554 5.7.1")
    failed = await entry(central)
    assert failed.state == "failed" and failed.attempts == 1 and not peer.received
    await central.settle()


async def test_wrong_peer_certificate_stays_queued_with_an_alert(
    pair: Any, gnupghome: Path, tmp_path: Path
) -> None:
    key, cert = make_dev_certificate("localhost")
    cert_file, key_file = tmp_path / "imposter.pem", tmp_path / "imposter.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    peer = ScriptedPeer([])
    async with scripted_peer(pair, peer, cert_file, key_file):
        central = await pair.start("central")
        await submit(central, gnupghome)
        alert = await until(lambda: scalar(central, select(AuditEvent)
                                           .where(AuditEvent.action == "federation.tls-alert")))  # fmt: skip
        await until(lambda: scalar(central, select(DeliveryQueueEntry.id)
                                   .where(DeliveryQueueEntry.attempts >= 2)))  # fmt: skip
    assert alert.target == "peer:region" and "not trusted" in alert.details
    waiting = await entry(central)
    assert waiting.state in ("queued", "delivering") and not peer.received


async def test_plaintext_only_peer_gets_nothing(
    pair: Any, gnupghome: Path, need_tool: Callable[[str], str], tmp_path: Path
) -> None:
    sink = need_tool("smtp-sink")
    dump = tmp_path / "sink"
    dump.mkdir()
    dump.chmod(0o777)  # smtp-sink drops to an unprivileged user when started as root
    user = ["-u", "nobody"] if os.geteuid() == 0 else []
    process = subprocess.Popen(
        [sink, *user, "-d", f"{dump}/%M.", f"127.0.0.1:{pair.region_port}", "10"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        central = await pair.start("central")
        await submit(central, gnupghome)
        await until(lambda: scalar(central, select(DeliveryQueueEntry.id)
                                   .where(DeliveryQueueEntry.attempts >= 2)))  # fmt: skip
        waiting = await entry(central)
        assert "does not offer STARTTLS" in waiting.last_error
        assert waiting.state in ("queued", "delivering")
        assert not list(dump.iterdir())  # not one message in plaintext
    finally:
        process.terminate()
        process.wait(timeout=10)


async def test_unknown_host_is_refused_at_the_transfer_port(pair: Any, tmp_path: Path) -> None:
    region = await pair.start("region")
    port = pair.region_port
    # Without TLS: nothing but the greeting, EHLO and STARTTLS.
    plain = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False, timeout=10)
    await plain.connect()
    with pytest.raises(aiosmtplib.SMTPResponseException) as refused:
        await plain.mail("x@moh.gov.example")
    assert refused.value.code == 530
    plain.close()
    # With TLS but a certificate no peer's trust anchors: the handshake is refused.
    key, cert = make_dev_certificate("stranger.example")
    cert_file, key_file = tmp_path / "s.pem", tmp_path / "s.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))  # fmt: skip
    for client_cert in (True, False):
        context = ssl.create_default_context(cafile=str(pair.region_data / "tls" / "cert.pem"))
        context.check_hostname = False
        if client_cert:
            context.load_cert_chain(cert_file, key_file)
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False, timeout=10)
        await client.connect()
        with pytest.raises((aiosmtplib.SMTPException, ssl.SSLError, OSError)):
            await client.starttls(tls_context=context)
            await client.mail("x@moh.gov.example")
        client.close()
    refusals = await scalar(region, select(func.count()).select_from(InboundCopy))
    assert refusals == 0
    # A refused handshake ends its session: no connection slot is kept.
    transfer = next(lst for lst in region.gateway._smtp if lst.name == "transfer")
    for _ in range(50):
        if not transfer.shared.sessions:
            break
        await asyncio.sleep(0.1)
    assert not transfer.shared.sessions


async def test_forged_dkim_is_refused(pair: Any, gnupghome: Path) -> None:
    region = await pair.start("region")
    central = await pair.start("central")
    await central.gateway.relay.stop()  # we hand the copy over ourselves
    await submit(central, gnupghome)
    async with central.gateway.sessions() as s:
        copy = (await s.execute(select(MessageCopy))).scalar_one()
        message = (await s.execute(select(Message))).scalar_one()
    original = await central.gateway.store.load_copy(copy.id)
    signer = central.gateway.relay._signer_for("moh.gov.example")
    signed = signer.signed(original)
    peer = central.gateway.federation["region"]
    tls = central.gateway.settings

    async def hand_over(data: bytes) -> str:
        [outcome] = await send_batch(peer, [Transfer(REGISTRAR, REGISTRY, data)],
                                     cert=tls.tls_cert, key=tls.tls_key,
                                     hostname="central.example", seconds=10)  # fmt: skip
        return outcome.reply

    trace = copy.trace_code.encode()
    forged = signed.replace(b"Barid-Trace: " + trace, b"Barid-Trace: " + trace[::-1], 1)
    assert (await hand_over(forged)).startswith("550 5.7.20")
    unsigned = original
    assert (await hand_over(unsigned)).startswith("550 5.7.20")
    assert await scalar(region, select(func.count()).select_from(InboundCopy)) == 0
    refused = await scalar(region, select(func.count()).select_from(AuditEvent)
                           .where(AuditEvent.action == "transfer.refused"))  # fmt: skip
    assert refused == 2
    # the genuine copy passes, and handing it over again is not a second delivery
    assert (await hand_over(signed)).startswith(f"250 2.0.0 Delivered {message.registry_number}")
    assert (await hand_over(signed)).startswith("250 2.0.0 Already delivered")
    # ... even when region's policy no longer allows it: the copy was filed, and the
    # sender must not be told otherwise
    policy = pair.region_data / "policies.yaml"
    policy.write_text(policy.read_text().replace("registry@region", "clerk@region"))
    assert (await region.gateway.policy.reload("test")).ok
    assert (await hand_over(signed)).startswith("250 2.0.0 Already delivered")
    assert await scalar(region, select(func.count()).select_from(InboundCopy)) == 1


async def test_relay_taken_again_after_a_crash_does_not_deliver_twice(
    pair: Any, gnupghome: Path
) -> None:
    region = await pair.start("region")
    central = await pair.start("central")
    await submit(central, gnupghome)
    await until(lambda: scalar(central, select(DeliveryQueueEntry.id)
                               .where(DeliveryQueueEntry.state == "delivered")))  # fmt: skip
    # As if the gateway died after the peer's 250 and before recording it:
    # the entry is still "delivering" and its lease is over.
    async with central.gateway.sessions() as s, s.begin():
        await s.execute(update(DeliveryQueueEntry).values(
            state="delivering", next_attempt_at="2000-01-01T00:00:00.000000Z"))  # fmt: skip
    central.gateway.relay.wake()
    await until(lambda: scalar(central, select(DeliveryQueueEntry.id)
                               .where(DeliveryQueueEntry.state == "delivered")))  # fmt: skip
    last = await entry(central)
    assert last.attempts == 2
    reply = await scalar(central, select(AuditEvent.details)
                         .where(AuditEvent.action == "message.relay")
                         .order_by(AuditEvent.id.desc()).limit(1))  # fmt: skip
    assert "Already delivered" in reply
    assert await scalar(region, select(func.count()).select_from(InboundCopy)) == 1

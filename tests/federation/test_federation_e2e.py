"""Two gateways on loopback: an employee of central writes to one of region.

Real listeners on both sides: submission with STARTTLS + AUTH at central, the
transfer port with mutual TLS and DKIM at region, IMAP at both to read the
result. The copy must arrive at region with central's DKIM signature intact and
the sender's own signature inside still verifying; the sender must get the
acceptance receipt and region's signed delivery receipt; a recipient region's
policy refuses must come back as a non-delivery receipt with an RFC 3464 part.
"""

from __future__ import annotations

import asyncio
import email
import email.message
import email.policy
import imaplib
import subprocess
from pathlib import Path
from typing import Any

import dkim
from sqlalchemy import func, select

from gateway.store.audit import AUDIT_KEY_PURPOSE, verify
from gateway.store.models import AuditEvent, DeliveryQueueEntry, InboundCopy, ReceiptJob
from keys.dkim_dns import dkim_records
from testkit.messages import pgp_mime, split_pgp_mime

REGISTRAR = "registrar@moh.gov.example"
REGISTRY = "registry@region.gov.example"
CLERK = "clerk@region.gov.example"


def letter(live: Any, gnupghome: Path, to: list[str]) -> bytes:
    code = live.credentials[REGISTRAR]["code"]
    return pgp_mime(gnupghome, REGISTRAR, REGISTRAR, to, extra=[("Barid-Employee-Code", code)])


async def until(check: Any, seconds: float = 30.0) -> Any:
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        value = await check()
        if value:
            return value
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.1)


async def count(live: Any, statement: Any) -> int:
    async with live.gateway.sessions() as s:
        return int(await s.scalar(statement) or 0)


def fetch_now(live: Any, who: str, mailbox: str, item: str = "BODY.PEEK[]") -> list[bytes]:
    """Every message of `mailbox` (item per message), read over IMAP STARTTLS."""
    client = imaplib.IMAP4("127.0.0.1", live.imap_port, timeout=15)
    try:
        client.starttls(live.tls)
        client.login(who, live.credentials[who]["password"])
        typ, _ = client.select(mailbox, readonly=True)
        assert typ == "OK"
        typ, data = client.uid("FETCH", "1:*", f"({item})")
        assert typ == "OK", data
        return [bytes(entry[1]) for entry in data if isinstance(entry, tuple)]
    finally:
        client.logout()


async def fetch(live: Any, who: str, mailbox: str, item: str = "BODY.PEEK[]") -> list[bytes]:
    """`fetch_now` in a thread: the gateways run on this test's loop."""
    return await asyncio.to_thread(fetch_now, live, who, mailbox, item)


def dns_from(keys: Any, domains: list[str]) -> Any:
    records = {
        r.name.rstrip(".").lower(): r.value for d in domains for r in dkim_records(keys, "barid", d)
    }

    def dnsfunc(name: bytes, timeout: int = 5) -> bytes:
        return records.get(name.decode().rstrip(".").lower(), "").encode()

    return dnsfunc


def parse(raw: bytes) -> email.message.EmailMessage:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, email.message.EmailMessage)
    return message


async def test_letter_crosses_to_the_region_and_receipts_come_back(
    pair: Any, gnupghome: Path
) -> None:
    region = await pair.start("region")
    central = await pair.start("central")
    raw = letter(central, gnupghome, [REGISTRY])
    code, text = await central.send(REGISTRAR, [REGISTRY], raw)
    assert code == 250, text
    registry = text.split()[-1]

    # region files the copy into the registry's INBOX (once) ...
    await until(lambda: count(region, select(func.count()).select_from(InboundCopy)))
    # ... and returns its delivery receipt, filed in the sender's Receipts folder
    delivered = (
        select(func.count())
        .select_from(ReceiptJob)
        .where(ReceiptJob.kind == "delivery", ReceiptJob.recipient == REGISTRY)
    )
    await until(lambda: count(central, delivered))
    await central.settle()

    [copy] = await fetch(region, REGISTRY, "INBOX")
    message = parse(copy)
    assert message["Barid-Registry"] == registry
    assert message["Barid-Peer"] == "central"
    assert message["Barid-Local-Classification"] == "internal"
    assert message["Authentication-Results"].endswith("dkim=pass header.d=moh.gov.example")
    # central's DKIM signatures (RSA and Ed25519) still verify on the filed copy
    dnsfunc = dns_from(central.gateway_keys, ["moh.gov.example"])
    checker = dkim.DKIM(copy)
    signatures = [h for h in message if h.lower() == "dkim-signature"]
    assert len(signatures) == 2
    assert all(checker.verify(idx=i, dnsfunc=dnsfunc) for i in range(2))
    # the sender's untouched original inside, whose OpenPGP signature verifies
    [original] = await fetch(region, REGISTRY, "INBOX", "BODY.PEEK[2]")
    assert original == raw
    inner, signature = split_pgp_mime(original)
    sig_file = Path(str(gnupghome)) / "fed.sig"
    data_file = Path(str(gnupghome)) / "fed.data"
    sig_file.write_bytes(signature)
    data_file.write_bytes(inner)
    verified = subprocess.run(
        ["gpg", "--homedir", str(gnupghome), "--verify", str(sig_file), str(data_file)],
        capture_output=True,
        timeout=60,
    )
    assert verified.returncode == 0, verified.stderr

    # the sender: Sent, an acceptance receipt and region's signed delivery receipt
    receipts = [parse(r) for r in await fetch(central, REGISTRAR, "Receipts")]
    kinds = sorted(str(r["Barid-Receipt"]) for r in receipts)
    assert kinds == ["acceptance", "delivery"]
    [from_region] = [r for r in receipts if r["Barid-Receipt"] == "delivery"]
    assert from_region["Barid-Recipient"] == REGISTRY
    assert from_region["From"] == "Barid <noreply@region.gov.example>"
    raw_receipt = next(
        r for r in await fetch(central, REGISTRAR, "Receipts") if b"Barid-Receipt: delivery" in r
    )
    region_dns = dns_from(region.gateway_keys, ["region.gov.example"])
    assert dkim.DKIM(raw_receipt).verify(idx=0, dnsfunc=region_dns)
    assert len(await fetch(central, REGISTRAR, "Sent")) == 1

    # the queue entry at central is delivered; both audit chains are intact
    async with central.gateway.sessions() as s:
        states = (await s.scalars(select(DeliveryQueueEntry.state))).all()
        assert states == ["delivered"]
        report = await verify(s, central.gateway_keys.derive(AUDIT_KEY_PURPOSE))
        assert report.ok, report
    async with region.gateway.sessions() as s:
        actions = (await s.scalars(select(AuditEvent.action))).all()
        assert "message.receive" in actions
        # the registry opened the copy twice (whole message, then part 2): recorded
        # in region's access trail with central's registry number and trace code
        accesses = (
            await s.scalars(select(AuditEvent).where(AuditEvent.action == "message.access"))
        ).all()
    assert len(accesses) == 2
    assert {a.target for a in accesses} == {registry} and {a.actor for a in accesses} == {REGISTRY}
    assert all(str(message["Barid-Trace"]) in a.details for a in accesses)


async def test_recipient_refused_by_the_regions_policy_gets_a_non_delivery_receipt(
    pair: Any, gnupghome: Path
) -> None:
    region = await pair.start("region")
    central = await pair.start("central")
    raw = letter(central, gnupghome, [CLERK])
    code, text = await central.send(REGISTRAR, [CLERK], raw)
    assert code == 250, text
    failed = (
        select(func.count())
        .select_from(ReceiptJob)
        .where(ReceiptJob.kind == "non-delivery", ReceiptJob.recipient == CLERK)
    )
    await until(lambda: count(central, failed))
    await central.settle()
    assert await count(region, select(func.count()).select_from(InboundCopy)) == 0
    [ndr] = [
        parse(r) for r in await fetch(central, REGISTRAR, "Receipts") if b"non-delivery" in r[:4000]
    ]
    assert ndr.get_content_type() == "multipart/report"
    assert ndr.get_param("report-type") == "delivery-status"
    status = next(p for p in ndr.walk() if p.get_content_type() == "message/delivery-status")
    text_status = status.as_string()
    assert "Status: 5.7.1" in text_status
    assert f"Final-Recipient: rfc822; {CLERK}" in text_status
    assert "central-to-registry" not in text_status  # region's rule ids stay there
    assert "policy default" in text_status
    async with central.gateway.sessions() as s:
        entry = (
            await s.execute(select(DeliveryQueueEntry.state, DeliveryQueueEntry.last_error))
        ).one()
    assert entry[0] == "failed" and entry[1].startswith("550 5.7.1")

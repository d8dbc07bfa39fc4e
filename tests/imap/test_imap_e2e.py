"""Mailboxes end to end (docs/CONTRACT.md §6-7): submit with a real SMTP client as one
employee, read as another over IMAP with Python's imaplib, aioimaplib and curl,
check the original still verifies with gpg / openssl after the round trip, the
receipts, the Sent copy, the access trail, and IDLE."""

from __future__ import annotations

import asyncio
import email
import email.policy
import imaplib
import json
import re
import ssl
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aioimaplib
import dkim
from prometheus_client import generate_latest
from sqlalchemy import select

from gateway.imap.describe import describe
from gateway.metrics import REGISTRY
from gateway.store.access_trail import access_entries
from gateway.store.mailbox.folders import INBOX
from gateway.store.models import DeliveryQueueEntry, ReceiptJob
from keys.dkim_dns import dkim_records
from policies.directory import EmployeeStatus
from testkit.messages import pgp_mime, smime_signed, split_pgp_mime

MOH = "minister@moh.gov.example"
MOF = "minister@mof.gov.example"
MOH_REGISTRAR = "registrar@moh.gov.example"


def code_of(live: Any, who: str) -> list[tuple[str, str]]:
    return [("Barid-Employee-Code", live.credentials[who]["code"])]


async def accepted(live: Any, sender: str, rcpts: list[str], raw: bytes) -> str:
    code, text = await live.send(sender, rcpts, raw)
    assert code == 250, (code, text)
    return text.split()[-1]


class Reader:
    """A blocking imaplib session (STARTTLS on the IMAP port), run in a thread."""

    def __init__(self, live: Any, who: str) -> None:
        self.client = imaplib.IMAP4("127.0.0.1", live.imap_port, timeout=15)
        self.client.starttls(live.tls)
        self.client.login(who, live.credentials[who]["password"])

    def fetch(self, mailbox: str, uid: str, items: str) -> list[Any]:
        typ, _ = self.client.select(mailbox)
        assert typ == "OK"
        typ, data = self.client.uid("FETCH", uid, items)
        assert typ == "OK", data
        return data

    def part(self, mailbox: str, uid: str, item: str) -> bytes:
        for entry in self.fetch(mailbox, uid, item):
            if isinstance(entry, tuple):
                return bytes(entry[1])
        raise AssertionError(f"no literal in FETCH {item}")

    def uids(self, mailbox: str) -> list[str]:
        self.client.select(mailbox)
        typ, data = self.client.uid("SEARCH", "ALL")
        assert typ == "OK"
        return data[0].decode().split()

    def close(self) -> None:
        self.client.logout()


def dns_for(live: Any) -> Any:
    records = {}
    for domain in ("moh.gov.example", "mof.gov.example"):
        for record in dkim_records(live.gateway_keys, "barid", domain):
            records[f"{record.name}.".encode()] = record.value.encode()

    def lookup(name: bytes, timeout: int = 5) -> bytes:
        return records.get(name, b"")

    return lookup


async def test_signed_letter_reaches_inbox_sent_and_receipts(live: Any, gnupghome: Path) -> None:
    raw = pgp_mime(gnupghome, MOH, MOH, [MOF, MOH_REGISTRAR], extra=code_of(live, MOH))
    registry = await accepted(live, MOH, [MOF, MOH_REGISTRAR], raw)
    await live.settle()

    def read_as_recipient() -> tuple[bytes, bytes, bytes, list[str]]:
        reader = Reader(live, MOF)
        try:
            uids = reader.uids(INBOX)
            head = reader.part(INBOX, uids[0], "(BODY.PEEK[HEADER.FIELDS (BARID-TRACE)])")
            structure = reader.fetch(INBOX, uids[0], "(BODYSTRUCTURE)")
            original = reader.part(INBOX, uids[0], "(BODY.PEEK[2])")
            whole = reader.part(INBOX, uids[0], "(BODY[])")
            flags = reader.fetch(INBOX, uids[0], "(FLAGS)")
            return head, original, whole, [str(structure), str(flags)]
        finally:
            reader.close()

    head, original, whole, info = await asyncio.to_thread(read_as_recipient)
    trace = head.decode().split(":", 1)[1].strip()
    assert re.fullmatch(r"[0-9A-Z-]{5,20}", trace), trace
    assert original == raw  # the signed original, byte for byte, through IMAP
    copy = email.message_from_bytes(whole, policy=email.policy.SMTP)
    assert copy["Barid-Registry"] == registry and copy["Barid-Trace"] == trace
    assert '"message" "rfc822"' in info[0].lower()
    assert "\\\\Seen" in info[1] or "\\Seen" in info[1]  # BODY[] set \Seen

    # The original verifies with gpg after the round trip.
    inner, signature = split_pgp_mime(original)
    work = Path(str(gnupghome))
    (work / "signed.bin").write_bytes(inner)
    (work / "signed.asc").write_bytes(signature)
    verified = subprocess.run(
        ["gpg", "--homedir", str(gnupghome), "--batch", "--verify",
         str(work / "signed.asc"), str(work / "signed.bin")],
        capture_output=True, timeout=60,
    )  # fmt: skip
    assert verified.returncode == 0, verified.stderr.decode()

    # Access trail: the header fetch was not an access; BODY[2] and BODY[] were, with
    # the trace code of exactly this copy, the reader, the protocol and the address.
    async with live.gateway.sessions() as session:
        entries = await access_entries(session, registry=registry)
    assert [e.items for e in entries] == [("BODY[2]",), ("BODY[]",)]
    for entry in entries:
        assert entry.employee == MOF and entry.trace == trace and entry.copy == "recipient"
        assert entry.protocol == "imap" and entry.client == "127.0.0.1"
        assert entry.mailbox == "INBOX"

    # Delivery recorded with its time; the queue entry is delivered exactly once.
    async with live.gateway.sessions() as session:
        states = (
            await session.execute(select(DeliveryQueueEntry.state, DeliveryQueueEntry.delivered_at))
        ).all()
    assert len(states) == 2 and all(s == "delivered" and at for s, at in states)

    # The sender: the original in Sent, and three receipts (acceptance + 2 deliveries).
    def read_as_sender() -> tuple[bytes, list[bytes]]:
        reader = Reader(live, MOH)
        try:
            sent_uid = reader.uids("Sent")
            assert len(sent_uid) == 1
            sent = reader.part("Sent", sent_uid[0], "(BODY.PEEK[])")
            receipts = [
                reader.part("Receipts", uid, "(BODY.PEEK[])") for uid in reader.uids("Receipts")
            ]
            return sent, receipts
        finally:
            reader.close()

    sent, receipts = await asyncio.to_thread(read_as_sender)
    assert sent == raw
    kinds = sorted(
        (
            email.message_from_bytes(r, policy=email.policy.SMTP)["Barid-Receipt"],
            email.message_from_bytes(r, policy=email.policy.SMTP)["Barid-Recipient"] or "",
        )
        for r in receipts
    )
    assert kinds == [("acceptance", ""), ("delivery", MOF), ("delivery", MOH_REGISTRAR)]
    lookup = dns_for(live)
    for receipt in receipts:
        parsed = email.message_from_bytes(receipt, policy=email.policy.SMTP)
        assert parsed["Barid-Registry"] == registry
        assert parsed["Barid-Verify"].endswith(copy["Barid-Verify"].rsplit("/", 1)[1])
        assert dkim.verify(receipt, dnsfunc=lookup)  # signed by the gateway
        text = receipt_text(parsed)
        assert registry in text and "Barid" in text
        assert re.search("[\u0600-\u06ff]", text)  # Arabic as well as English

    # The sender's Sent copy is an access by the sender ("sender" copy, no trace code).
    async with live.gateway.sessions() as session:
        mine = await access_entries(session, registry=registry, employee=MOH)
    assert [(e.copy, e.trace, e.mailbox) for e in mine] == [("sender", None, "Sent")]

    # Metrics: bounded labels, no addresses.
    exposition = generate_latest(REGISTRY).decode()
    for line in (
        'barid_deliveries_total{outcome="delivered"}',
        'barid_receipts_total{kind="acceptance"}',
        'barid_message_accesses_total{protocol="imap"}',
        'barid_login_attempts_total{outcome="ok",protocol="imap"}',
    ):
        assert line in exposition, line
    assert "@" not in exposition


def receipt_text(message: email.message.EmailMessage) -> str:
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    return str(body.get_content())


async def test_smime_letter_round_trip_with_aioimaplib(live: Any) -> None:
    files = live.credentials[MOH]["key_files"]
    cert, key = Path(files["s/mime certificate"]), Path(files["s/mime private key"])
    raw = smime_signed(cert, key, MOH, [MOF], extra=code_of(live, MOH))
    registry = await accepted(live, MOH, [MOF], raw)
    await live.settle()

    client = aioimaplib.IMAP4_SSL(
        host="127.0.0.1", port=live.imaps_port, ssl_context=live.tls, timeout=15
    )
    await client.wait_hello_from_server()
    assert (await client.login(MOF, live.credentials[MOF]["password"])).result == "OK"
    assert (await client.select("INBOX")).result == "OK"
    response = await client.uid("fetch", "1", "(BODY.PEEK[2])")
    assert response.result == "OK"
    original = bytes(next(line for line in response.lines if isinstance(line, bytearray)))
    await client.logout()
    assert original == raw

    # openssl verifies the original's signature against the agency CA after the round trip.
    out = Path(live.data) / "fetched.eml"
    out.write_bytes(original)
    verified = subprocess.run(
        ["openssl", "cms", "-verify", "-in", str(out), "-CAfile", files["agency ca"],
         "-purpose", "any", "-out", "/dev/null"],
        capture_output=True, timeout=60,
    )  # fmt: skip
    assert verified.returncode == 0, verified.stderr.decode()

    async with live.gateway.sessions() as session:
        [entry] = await access_entries(session, registry=registry)
    assert entry.protocol == "imaps" and entry.employee == MOF and entry.items == ("BODY[2]",)


async def test_curl_reads_a_delivered_copy_over_starttls(
    live: Any, gnupghome: Path, need_tool: Callable[[str], str]
) -> None:
    need_tool("curl")
    raw = pgp_mime(gnupghome, MOH, MOH, [MOF], extra=code_of(live, MOH))
    registry = await accepted(live, MOH, [MOF], raw)
    await live.settle()
    cert = str(live.gateway.settings.tls_cert)
    password = live.credentials[MOF]["password"]
    url = f"imap://127.0.0.1:{live.imap_port}/INBOX;UID=1"

    def fetch() -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            ["curl", "--silent", "--show-error", "--ssl-reqd", "--cacert", cert,
             "--max-time", "20", "--user", f"{MOF}:{password}", url],
            capture_output=True, timeout=30,
        )  # fmt: skip

    result = await asyncio.to_thread(fetch)
    assert result.returncode == 0, result.stderr.decode()
    fetched = result.stdout.replace(b"\r\n", b"\n")
    assert raw.replace(b"\r\n", b"\n") in fetched
    async with live.gateway.sessions() as session:
        entries = await access_entries(session, registry=registry)
    assert len(entries) == 1 and entries[0].employee == MOF and entries[0].protocol == "imap"

    # Without TLS, curl cannot log in: the server offers no login before STARTTLS.
    def plain() -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            ["curl", "--silent", "--max-time", "10", "--user", f"{MOF}:{password}", url],
            capture_output=True, timeout=30,
        )  # fmt: skip

    assert (await asyncio.to_thread(plain)).returncode != 0


async def test_idle_client_is_told_of_a_delivery_within_a_second(live: Any) -> None:
    client = aioimaplib.IMAP4_SSL(
        host="127.0.0.1", port=live.imaps_port, ssl_context=live.tls, timeout=15
    )
    await client.wait_hello_from_server()
    await client.login(MOF, live.credentials[MOF]["password"])
    await client.select("INBOX")
    idle = await client.idle_start(timeout=20)  # returns once the server said "+ Idling."
    assert client.has_pending_idle()
    mailboxes = live.gateway.mailboxes
    async with live.gateway.sessions() as session:
        from gateway.store.models import Employee, Mailbox

        inbox = await session.scalar(
            select(Mailbox.id)
            .join(Employee, Employee.id == Mailbox.employee_id)
            .where(Employee.address == MOF, Mailbox.name == INBOX)
        )
    assert inbox is not None
    raw = b"From: a@moh.gov.example\r\nSubject: idle\r\n\r\nhello\r\n"
    await mailboxes.append(inbox, raw, describe(raw))
    delivered = time.monotonic()
    push = await client.wait_server_push(timeout=5)
    waited = time.monotonic() - delivered
    client.idle_done()
    await asyncio.wait_for(idle, 5)
    await client.logout()
    assert any(b"EXISTS" in (p if isinstance(p, bytes) else str(p).encode()) for p in push), push
    assert waited < 1.0, f"IDLE told after {waited:.3f} s"


async def test_suspended_recipient_gets_a_non_delivery_receipt(live: Any, gnupghome: Path) -> None:
    worker = live.gateway.worker
    await worker.stop()  # deliver by hand, after the recipient has been suspended
    raw = pgp_mime(gnupghome, MOH, MOH, [MOF, MOH_REGISTRAR], extra=code_of(live, MOH))
    registry = await accepted(live, MOH, [MOF, MOH_REGISTRAR], raw)
    assert live.gateway.directory is not None
    await live.gateway.directory.set_status(MOH_REGISTRAR, EmployeeStatus.SUSPENDED, actor="test")
    while await worker.run_once():
        pass
    async with live.gateway.sessions() as session:
        jobs = sorted(
            (j.kind, j.recipient, j.reason or "", j.state)
            for j in (await session.scalars(select(ReceiptJob))).all()
        )
        states = dict(
            (await session.execute(select(DeliveryQueueEntry.id, DeliveryQueueEntry.state))).all()
        )
    assert jobs == [
        ("acceptance", "", "", "done"),
        ("delivery", MOF, "", "done"),
        ("non-delivery", MOH_REGISTRAR, "recipient-suspended", "done"),
    ]
    assert sorted(states.values()) == ["delivered", "failed"]

    def receipts() -> list[bytes]:
        reader = Reader(live, MOH)
        try:
            return [reader.part("Receipts", u, "(BODY.PEEK[])") for u in reader.uids("Receipts")]
        finally:
            reader.close()

    found = {
        email.message_from_bytes(r, policy=email.policy.SMTP)["Barid-Receipt"]: r
        for r in await asyncio.to_thread(receipts)
    }
    failure = email.message_from_bytes(found["non-delivery"], policy=email.policy.SMTP)
    assert failure["Barid-Recipient"] == MOH_REGISTRAR and failure["Barid-Registry"] == registry
    data = json.loads(
        next(p for p in failure.walk() if p.get_content_type() == "application/json").get_content()
    )
    assert data["reason"] == "recipient-suspended"


async def test_tls_context_is_required_for_login(live: Any) -> None:
    def try_plain() -> str:
        client = imaplib.IMAP4("127.0.0.1", live.imap_port, timeout=10)
        try:
            assert "LOGINDISABLED" in client.capabilities
            client.login(MOF, live.credentials[MOF]["password"])
        except imaplib.IMAP4.error as exc:
            return str(exc)
        finally:
            client.shutdown()
        return "logged in"

    assert "disabled" in (await asyncio.to_thread(try_plain)).lower()
    assert isinstance(live.tls, ssl.SSLContext)


async def test_a_damaged_copy_waits_and_does_not_hold_up_the_others(
    live: Any, gnupghome: Path
) -> None:
    from sqlalchemy import update

    from gateway.store.models import Blob, MessageCopy

    worker = live.gateway.worker
    await worker.stop()
    raw = pgp_mime(gnupghome, MOH, MOH, [MOF, MOH_REGISTRAR], extra=code_of(live, MOH))
    await accepted(live, MOH, [MOF, MOH_REGISTRAR], raw)
    async with live.gateway.sessions() as session, session.begin():
        copy = (
            await session.scalars(select(MessageCopy).where(MessageCopy.recipient == MOF))
        ).one()
        blob = await session.get(Blob, copy.prefix_blob_id)
        assert blob is not None
        damaged = bytes([blob.ciphertext[0] ^ 1]) + blob.ciphertext[1:]
        await session.execute(update(Blob).where(Blob.id == blob.id).values(ciphertext=damaged))
    assert await worker.run_once() >= 2  # one delivered, one set aside (and receipts)
    async with live.gateway.sessions() as session:
        rows = {
            recipient: (state, attempts, next_at > accepted_at, error)
            for recipient, state, attempts, next_at, accepted_at, error in (
                await session.execute(
                    select(
                        MessageCopy.recipient,
                        DeliveryQueueEntry.state,
                        DeliveryQueueEntry.attempts,
                        DeliveryQueueEntry.next_attempt_at,
                        DeliveryQueueEntry.created_at,
                        DeliveryQueueEntry.last_error,
                    ).join(MessageCopy, MessageCopy.id == DeliveryQueueEntry.copy_id)
                )
            ).all()
        }
    assert rows[MOH_REGISTRAR][0] == "delivered"
    state, attempts, later, error = rows[MOF]
    assert (state, attempts, later) == ("queued", 1, True)
    assert error and "gateway log" in error
    assert await worker.run_once() == 0  # not due again yet

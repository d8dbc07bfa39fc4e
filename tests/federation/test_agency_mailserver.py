"""An agency with its own mail server, end to end: a real gateway (demo government)
whose MOF copies go by IMAP APPEND to a real Dovecot (testkit/dovecot.py)
through `[mailservers.mof]` in barid.toml, while other copies stay local.

The gateway runs on the test's event loop, so every blocking IMAP read (Dovecot
or Barid's own IMAP) goes through `asyncio.to_thread`. Every test has a Dovecot
of its own (testkit/dovecot.py, users minister@ and clerk@mof.gov.example,
mails over 64 KiB refused) and a gateway of its own.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import imaplib
import json
import os
import shutil
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from email.message import EmailMessage, Message
from pathlib import Path
from typing import Any

import dkim
import pytest
from sqlalchemy import select

from gateway.config import load_settings
from gateway.serve import Gateway
from gateway.store.models import DeliveryQueueEntry, MessageCopy
from gateway.store.models import Message as StoredMessage
from keys.dkim_dns import dkim_records
from keys.gateway_keys import load_gateway_keys
from testkit import dovecot as dovecot_support
from testkit.dovecot import Dovecot, read_messages
from testkit.gateway import Live, tls_client
from testkit.messages import pgp_mime
from testkit.ports import free_port

pytestmark = pytest.mark.timeout(120)

MOH = "minister@moh.gov.example"
MOH_REGISTRAR = "registrar@moh.gov.example"
MOF = "minister@mof.gov.example"
MOF_CLERK = "clerk@mof.gov.example"
DOVECOT_USERS = {MOF: "pw-mof-minister-4", MOF_CLERK: "pw-mof-clerk-4"}
MAX_MAIL_SIZE = "64k"
ENV = {
    "BARID_SMTP__SUBMISSION_PORT": "0", "BARID_SMTP__SMTPS_PORT": "0",
    "BARID_SMTP__TRANSFER_PORT": "0", "BARID_IMAP__PORT": "0", "BARID_IMAP__IMAPS_PORT": "0",
    "BARID_HTTP__PORT": "0", "BARID_HTTP__ADMIN_PORT": "0", "BARID_SMTP__MIN_FREE_DISK_MB": "0",
    "BARID_HTTP__VERIFY_FAILURES_PER_10_MINUTES": "1000000",
    "BARID_DELIVERY__RETRY_FIRST_SECONDS": "0.3", "BARID_DELIVERY__RETRY_MAX_SECONDS": "1",
    "BARID_DELIVERY__TIMEOUT_SECONDS": "10",
}  # fmt: skip


# ---------------------------------------------------------------- Dovecot


@pytest.fixture
def dovecot_binary(need_tool: Callable[[str], str]) -> str:
    return dovecot_support.find_dovecot() or need_tool("dovecot")


@pytest.fixture
def dovecot(dovecot_binary: str) -> Iterator[Dovecot]:
    """A Dovecot of the test's own: every test's gateway starts from the same demo
    data and keys, so registry numbers and trace codes repeat from test to test."""
    with dovecot_support.dovecot_server(
        dovecot_binary, DOVECOT_USERS, max_mail_size=MAX_MAIL_SIZE
    ) as server:
        yield server


def dovecot_copies(server: Dovecot, user: str, trace: str, folder: str = "INBOX") -> list[bytes]:
    """`user`'s messages in `folder` on Dovecot with the Barid-Trace `trace`."""
    return [
        raw
        for raw in read_messages(server, user, folder)
        if email.message_from_bytes(raw, policy=email.policy.SMTP)["Barid-Trace"] == trace
    ]


def dovecot_part(
    server: Dovecot, user: str, uid: bytes, section: str, folder: str = "INBOX"
) -> bytes:
    """BODY.PEEK[<section>] of one message in `user`'s `folder`, as parsed by Dovecot."""
    context = ssl.create_default_context(cafile=str(server.ca_file))
    conn = imaplib.IMAP4_SSL(server.host, server.imaps_port, ssl_context=context, timeout=10)
    try:
        conn.login(user, server.users[user])
        conn.select(folder, readonly=True)
        typ, data = conn.uid("FETCH", uid.decode(), f"(BODY.PEEK[{section}])")
        assert typ == "OK", data
        return next(bytes(item[1]) for item in data if isinstance(item, tuple))
    finally:
        conn.logout()


def dovecot_uid_of(server: Dovecot, user: str, trace: str, folder: str = "INBOX") -> bytes:
    """The UID of the one message with the Barid-Trace `trace` in `user`'s `folder`."""
    context = ssl.create_default_context(cafile=str(server.ca_file))
    conn = imaplib.IMAP4_SSL(server.host, server.imaps_port, ssl_context=context, timeout=10)
    try:
        conn.login(user, server.users[user])
        conn.select(folder, readonly=True)
        typ, data = conn.uid("SEARCH", "HEADER", "Barid-Trace", f'"{trace}"')
        assert typ == "OK", data
        uids = data[0].split()
        assert len(uids) == 1, uids
        return bytes(uids[0])
    finally:
        conn.logout()


# ---------------------------------------------------------------- the gateway

StartGateway = Callable[..., Awaitable[Live]]


@pytest.fixture
async def start_gateway(
    demo_template: Path, tmp_path: Path, credentials: dict[str, dict[str, Any]]
) -> AsyncIterator[StartGateway]:
    """`await start_gateway(port=, ca_file=, folder=)`: the demo gateway, with its MOF
    copies going to the IMAP server at 127.0.0.1:`port` (implicit TLS, master user)."""
    started: list[Gateway] = []

    async def start(*, port: int, ca_file: Path, folder: str = "INBOX") -> Live:
        data = tmp_path / "d"
        shutil.copytree(demo_template, data)
        password_file = tmp_path / "mof-imap.pw"
        password_file.write_text(dovecot_support.MASTER_PASSWORD + "\n", encoding="utf-8")
        os.chmod(password_file, 0o600)
        table = {
            "agencies": ["MOF"],
            "host": "127.0.0.1",
            "port": port,
            "tls": "implicit",
            "tls_ca": str(ca_file),
            "login": "{address}*" + dovecot_support.MASTER_USER,
            "password_file": str(password_file),
            "folder": folder,
        }
        lines = ["", "[mailservers.mof]"] + [f"{k} = {json.dumps(v)}" for k, v in table.items()]
        with (data / "barid.toml").open("a", encoding="utf-8") as config:
            config.write("\n".join(lines) + "\n")
        settings = load_settings(data / "barid.toml", environ=ENV)
        assert settings.agency_mailservers == {"MOF": "mof"}
        gateway = Gateway(settings)
        try:
            await gateway.start()
        except BaseException:
            await gateway.stop()
            raise
        started.append(gateway)
        keys = load_gateway_keys(settings.keys_dir)
        return Live(gateway, keys, data, credentials, tls_client(settings.tls_cert))

    try:
        yield start
    finally:
        for gateway in started:
            await gateway.stop()


def code_of(live: Live, who: str) -> list[tuple[str, str]]:
    return [("Barid-Employee-Code", live.credentials[who]["code"])]


async def accepted(live: Live, sender: str, rcpts: list[str], raw: bytes) -> str:
    code, text = await live.send(sender, rcpts, raw)
    assert code == 250, (code, text)
    return text.split()[-1]


async def entries(live: Live, registry: str) -> dict[str, DeliveryQueueEntry]:
    """Recipient -> its delivery_queue entry, for the letter `registry`."""
    async with live.gateway.sessions() as session:
        rows = (
            await session.execute(
                select(MessageCopy.recipient, DeliveryQueueEntry)
                .join(MessageCopy, MessageCopy.id == DeliveryQueueEntry.copy_id)
                .join(StoredMessage, StoredMessage.id == MessageCopy.message_id)
                .where(StoredMessage.registry_number == registry)
            )
        ).all()
    return {recipient: entry for recipient, entry in rows}


async def trace_of(live: Live, registry: str, recipient: str) -> str:
    async with live.gateway.sessions() as session:
        trace = await session.scalar(
            select(MessageCopy.trace_code)
            .join(StoredMessage, StoredMessage.id == MessageCopy.message_id)
            .where(StoredMessage.registry_number == registry, MessageCopy.recipient == recipient)
        )
    assert trace, (registry, recipient)
    return str(trace)


async def wait_for(
    live: Live,
    registry: str,
    recipient: str,
    done: Callable[[DeliveryQueueEntry], bool],
    seconds: float = 20.0,
) -> DeliveryQueueEntry:
    """Polls `recipient`'s queue entry until `done(entry)`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while True:
        entry = (await entries(live, registry))[recipient]
        if done(entry):
            return entry
        assert loop.time() < deadline, (entry.state, entry.attempts, entry.last_error)
        await asyncio.sleep(0.05)


def settled(entry: DeliveryQueueEntry) -> bool:
    return entry.state in ("delivered", "failed")


class BaridReader:
    """A blocking imaplib session on Barid's own IMAP (STARTTLS), run in a thread."""

    def __init__(self, live: Live, who: str) -> None:
        self.client = imaplib.IMAP4("127.0.0.1", live.imap_port, timeout=15)
        self.client.starttls(live.tls)
        self.client.login(who, live.credentials[who]["password"])

    def messages(self, mailbox: str) -> list[bytes]:
        typ, _ = self.client.select(mailbox, readonly=True)
        assert typ == "OK", mailbox
        typ, data = self.client.uid("SEARCH", "ALL")
        assert typ == "OK"
        out = []
        for uid in data[0].decode().split():
            typ, fetched = self.client.uid("FETCH", uid, "(BODY.PEEK[])")
            assert typ == "OK", fetched
            out.append(next(bytes(item[1]) for item in fetched if isinstance(item, tuple)))
        return out

    def close(self) -> None:
        self.client.logout()


async def barid_raw(live: Live, who: str, mailbox: str) -> list[bytes]:
    def read() -> list[bytes]:
        reader = BaridReader(live, who)
        try:
            return reader.messages(mailbox)
        finally:
            reader.close()

    return await asyncio.to_thread(read)


async def barid_messages(live: Live, who: str, mailbox: str) -> list[EmailMessage]:
    return [parse(raw) for raw in await barid_raw(live, who, mailbox)]


def parse(raw: bytes) -> EmailMessage:
    message = email.message_from_bytes(raw, policy=email.policy.SMTP)
    assert isinstance(message, EmailMessage)
    return message


async def receipts_of(live: Live, registry: str) -> dict[tuple[str, str], bytes]:
    """(kind, recipient) -> receipt in the sender's (MOH's) Receipts folder, for `registry`."""
    found: dict[tuple[str, str], bytes] = {}
    for raw in await barid_raw(live, MOH, "Receipts"):
        receipt = parse(raw)
        if receipt["Barid-Registry"] == registry:
            key = (str(receipt["Barid-Receipt"]), str(receipt["Barid-Recipient"] or ""))
            assert key not in found, key
            found[key] = raw
    return found


def dns_for(live: Live) -> Callable[..., bytes]:
    records = {}
    for domain in ("moh.gov.example", "mof.gov.example"):
        for record in dkim_records(live.gateway_keys, "barid", domain):
            records[f"{record.name}.".encode()] = record.value.encode()

    def lookup(name: bytes, timeout: int = 5) -> bytes:
        return records.get(name, b"")

    return lookup


# ---------------------------------------------------------------- tests


async def test_signed_letter_is_appended_on_the_agency_server(
    start_gateway: StartGateway, dovecot: Dovecot, gnupghome: Path
) -> None:
    live = await start_gateway(port=dovecot.imaps_port, ca_file=dovecot.ca_file)
    raw = pgp_mime(gnupghome, MOH, MOH, [MOF], extra=code_of(live, MOH))
    registry = await accepted(live, MOH, [MOF], raw)
    assert (await entries(live, registry))[MOF].target == "imap:mof"

    entry = await wait_for(live, registry, MOF, settled)
    assert (entry.state, entry.last_error, entry.attempts) == ("delivered", None, 1), entry
    assert entry.delivered_at
    await live.settle()

    trace = await trace_of(live, registry, MOF)
    [copy] = await asyncio.to_thread(read_messages, dovecot, MOF)
    parsed = parse(copy)
    assert parsed["Barid-Trace"] == trace and parsed["Barid-Registry"] == registry
    assert parsed["DKIM-Signature"]
    assert dkim.verify(copy, dnsfunc=dns_for(live)), "the copy's DKIM signature does not verify"
    assert parsed.get_content_type() == "multipart/mixed"
    parts = list(parsed.iter_parts())
    assert parts[1].get_content_type() == "message/rfc822"
    uid = await asyncio.to_thread(dovecot_uid_of, dovecot, MOF, trace)
    assert await asyncio.to_thread(dovecot_part, dovecot, MOF, uid, "2") == raw

    # Nothing in Barid's own INBOX for the recipient; the sender has both receipts.
    assert await barid_messages(live, MOF, "INBOX") == []
    receipts = await receipts_of(live, registry)
    assert sorted(receipts) == [("acceptance", ""), ("delivery", MOF)]
    lookup = dns_for(live)
    for receipt in receipts.values():
        assert dkim.verify(receipt, dnsfunc=lookup)


async def test_mixed_recipients_go_to_their_own_places(
    start_gateway: StartGateway, dovecot: Dovecot, gnupghome: Path
) -> None:
    live = await start_gateway(port=dovecot.imaps_port, ca_file=dovecot.ca_file)
    raw = pgp_mime(gnupghome, MOH, MOH, [MOF_CLERK, MOH_REGISTRAR], extra=code_of(live, MOH))
    registry = await accepted(live, MOH, [MOF_CLERK, MOH_REGISTRAR], raw)
    queued = await entries(live, registry)
    assert {r: e.target for r, e in queued.items()} == {
        MOF_CLERK: "imap:mof",
        MOH_REGISTRAR: "local",
    }
    for recipient in (MOF_CLERK, MOH_REGISTRAR):
        entry = await wait_for(live, registry, recipient, settled)
        assert entry.state == "delivered", (recipient, entry.last_error)
    await live.settle()

    trace = await trace_of(live, registry, MOF_CLERK)
    [remote] = await asyncio.to_thread(dovecot_copies, dovecot, MOF_CLERK, trace)
    assert await asyncio.to_thread(read_messages, dovecot, MOF) == []
    [local] = await barid_messages(live, MOH_REGISTRAR, "INBOX")
    assert local["Barid-Registry"] == registry == parse(remote)["Barid-Registry"]
    assert local["Barid-Trace"] != parse(remote)["Barid-Trace"]  # one trace code per copy
    assert await barid_messages(live, MOF_CLERK, "INBOX") == []
    receipts = await receipts_of(live, registry)
    assert sorted(receipts) == [
        ("acceptance", ""),
        ("delivery", MOF_CLERK),
        ("delivery", MOH_REGISTRAR),
    ]


async def test_server_down_then_up_gets_the_copy_exactly_once(
    start_gateway: StartGateway,
    dovecot_binary: str,
    gnupghome: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    imap_port = free_port()
    imaps_port = free_port()
    while imaps_port == imap_port:
        imaps_port = free_port()
    # The server's CA is made when it starts: until then the trusted file holds another.
    bundle = dovecot_support.make_ca(tmp_path, "Placeholder CA").pem
    live = await start_gateway(port=imaps_port, ca_file=bundle)
    raw = pgp_mime(gnupghome, MOH, MOH, [MOF], extra=code_of(live, MOH))
    registry = await accepted(live, MOH, [MOF], raw)

    # Nobody listens: the copy stays queued, retried with its error recorded.
    first = await wait_for(live, registry, MOF, lambda e: e.attempts >= 1 and e.state == "queued")
    assert first.last_error and "cannot connect" in first.last_error, first.last_error
    again = await wait_for(
        live, registry, MOF, lambda e: e.attempts >= first.attempts + 1 and e.state == "queued"
    )
    assert again.last_error and "cannot connect" in again.last_error
    assert sorted(await receipts_of(live, registry)) == [("acceptance", "")]

    # The agency's server comes up on the configured port.
    ports = iter([imap_port, imaps_port])
    monkeypatch.setattr(dovecot_support, "free_port", lambda: next(ports))
    with dovecot_support.dovecot_server(
        dovecot_binary, DOVECOT_USERS, max_mail_size=MAX_MAIL_SIZE
    ) as server:
        assert server.imaps_port == imaps_port
        shutil.copyfile(server.ca_file, bundle)
        entry = await wait_for(live, registry, MOF, settled)
        assert entry.state == "delivered", (entry.last_error, server.log_text()[-2000:])
        assert entry.attempts > again.attempts
        await live.settle()
        await asyncio.sleep(1.5)  # a relay round or more: nothing is appended twice
        trace = await trace_of(live, registry, MOF)
        copies = await asyncio.to_thread(dovecot_copies, server, MOF, trace)
        assert len(copies) == 1
        assert (await entries(live, registry))[MOF].state == "delivered"
    receipts = await receipts_of(live, registry)
    assert sorted(receipts) == [("acceptance", ""), ("delivery", MOF)]


async def test_missing_folder_is_created(
    start_gateway: StartGateway, dovecot: Dovecot, gnupghome: Path
) -> None:
    live = await start_gateway(port=dovecot.imaps_port, ca_file=dovecot.ca_file, folder="Official")
    assert await asyncio.to_thread(read_messages, dovecot, MOF_CLERK, "Official") == []  # absent
    raw = pgp_mime(gnupghome, MOH, MOH, [MOF_CLERK], extra=code_of(live, MOH))
    registry = await accepted(live, MOH, [MOF_CLERK], raw)
    entry = await wait_for(live, registry, MOF_CLERK, settled)
    assert entry.state == "delivered", entry.last_error
    trace = await trace_of(live, registry, MOF_CLERK)
    [copy] = await asyncio.to_thread(dovecot_copies, dovecot, MOF_CLERK, trace, "Official")
    assert parse(copy)["Barid-Registry"] == registry
    uid = await asyncio.to_thread(dovecot_uid_of, dovecot, MOF_CLERK, trace, "Official")
    assert await asyncio.to_thread(dovecot_part, dovecot, MOF_CLERK, uid, "2", "Official") == raw
    assert await asyncio.to_thread(dovecot_copies, dovecot, MOF_CLERK, trace) == []  # INBOX


async def test_copy_over_the_server_limit_fails_with_a_non_delivery_receipt(
    start_gateway: StartGateway, dovecot: Dovecot, gnupghome: Path
) -> None:
    live = await start_gateway(port=dovecot.imaps_port, ca_file=dovecot.ca_file)
    document = b"%PDF-1.4\n" + os.urandom(100 * 1024) + b"\n%%EOF\n"  # over 64k once in base64
    raw = pgp_mime(gnupghome, MOH, MOH, [MOF], extra=code_of(live, MOH), document=document)
    registry = await accepted(live, MOH, [MOF], raw)
    entry = await wait_for(live, registry, MOF, settled)
    assert entry.state == "failed" and entry.attempts == 1, (entry.state, entry.last_error)
    assert entry.last_error and ("[LIMIT]" in entry.last_error or "[TOOBIG]" in entry.last_error)
    assert entry.delivered_at is None
    await live.settle()
    trace = await trace_of(live, registry, MOF)
    assert await asyncio.to_thread(dovecot_copies, dovecot, MOF, trace) == []
    assert dovecot_support.maildir_files(dovecot, MOF) == []

    receipts = await receipts_of(live, registry)
    assert sorted(receipts) == [("acceptance", ""), ("non-delivery", MOF)]
    report = parse(receipts[("non-delivery", MOF)])
    assert report.get_content_type() == "multipart/report"
    assert report.get_param("report-type") == "delivery-status"
    assert dkim.verify(receipts[("non-delivery", MOF)], dnsfunc=dns_for(live))
    status_part = next(
        p for p in report.walk() if p.get_content_type() == "message/delivery-status"
    )
    blocks: list[Message] = status_part.get_payload()  # type: ignore[assignment]
    assert len(blocks) == 2
    per_recipient = blocks[1]
    assert per_recipient["Final-Recipient"] == f"rfc822; {MOF}"
    assert per_recipient["Action"] == "failed"
    status = str(per_recipient["Status"])
    assert status.startswith("5.") and len(status.split(".")) == 3, status
    facts = json.loads(
        next(p for p in report.walk() if p.get_content_type() == "application/json").get_content()
    )
    assert facts["reason"] == "recipient-refused"
    assert facts["status"] == status
    assert facts["detail"] == entry.last_error  # the server's own answer, for machines
    text = report.get_body(preferencelist=("plain",))
    assert text is not None and entry.last_error in str(text.get_content())  # and for people

    # A size refusal by the IMAP server is reported with the size status; its own
    # answer is in receipt.json and the text above (Diagnostic-Code is for SMTP replies).
    assert status == "5.3.4"

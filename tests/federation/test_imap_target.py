"""IMAP APPEND delivery to an agency's own server (gateway.delivery.imap_target),
against a real Dovecot with real, verified TLS (testkit/dovecot.py).

One Dovecot serves the module (started on first use, after `need_tool`); every
test uses its own mailbox. The gateway logs in as `user*barid` (a master user);
copies are read back as the user himself with Python's imaplib.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from gateway.delivery.imap_target import AppendOutcome, ImapServer, append_copy
from testkit import dovecot as dovecot_support
from testkit.dovecot import Dovecot, read_messages
from testkit.ports import free_port

pytestmark = pytest.mark.timeout(120)

DOMAIN = "agency.example"
USERS = {
    f"{name}@{DOMAIN}": f"pw-{name}-9"
    for name in (
        "inbox.implicit", "inbox.starttls", "official", "dedup", "dedup.newfolder",
        "untrusted", "wrongname.implicit", "wrongname.starttls", "badmaster", "toobig", "quota", "logs", "bounded",
    )
}  # fmt: skip
QUOTA_USER = f"quota@{DOMAIN}"


class _Holder:
    """Starts the module's Dovecot on first use and stops it at the module's end."""

    def __init__(self) -> None:
        self.stack = ExitStack()
        self.server: Dovecot | None = None

    def get(self, binary: str) -> Dovecot:
        if self.server is None:
            self.server = self.stack.enter_context(
                dovecot_support.dovecot_server(
                    binary,
                    USERS,
                    max_mail_size="64k",
                    userdb_extra={QUOTA_USER: "userdb_quota_rule=*:messages=1"},
                )
            )
        return self.server


@pytest.fixture(scope="module")
def _dovecot_holder() -> Iterator[_Holder]:
    holder = _Holder()
    with holder.stack:
        yield holder


@pytest.fixture
def dovecot(need_tool: Callable[[str], str], _dovecot_holder: _Holder) -> Dovecot:
    binary = dovecot_support.find_dovecot() or need_tool("dovecot")
    return _dovecot_holder.get(binary)


@pytest.fixture
def lone_dovecot(need_tool: Callable[[str], str]) -> Iterator[Dovecot]:
    """A Dovecot of the test's own, for failed logins (whose penalty slows later logins)."""
    binary = dovecot_support.find_dovecot() or need_tool("dovecot")
    with dovecot_support.dovecot_server(binary, USERS) as server:
        yield server


def imap_server(dc: Dovecot, tls: str = "implicit", **changes: object) -> ImapServer:
    server = ImapServer(
        name="agency-test",
        host="127.0.0.1",
        port=dc.imaps_port if tls == "implicit" else dc.imap_port,
        tls="implicit" if tls == "implicit" else "starttls",
        ca_file=dc.ca_file,
        server_name="",
        login="{address}*" + dc.master_user,
        password=dc.master_password,
        timeout=15.0,
    )
    return dataclasses.replace(server, **changes)  # type: ignore[arg-type]


def message(recipient: str, trace: str, body: str = "Official letter.", size: int = 0) -> bytes:
    head = (
        f"From: registry@gateway.example\r\nTo: {recipient}\r\n"
        f"Subject: Official copy {trace}\r\nMessage-ID: <{trace}@gateway.example>\r\n"
        f"Barid-Trace: {trace}\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=UTF-8\r\n\r\n"
    )
    text = body + "\r\n"
    if size:
        line = "x" * 76 + "\r\n"
        text += line * (size // len(line) + 1)
    return head.encode() + text.encode()


# ---------------------------------------------------------------- delivery


@pytest.mark.parametrize("tls", ["implicit", "starttls"])
async def test_append_to_inbox_via_master_user_is_byte_identical(
    dovecot: Dovecot, tls: str
) -> None:
    user = f"inbox.{tls}@{DOMAIN}"
    raw = message(user, "7Q4MZ-K2D9X", "نص عربي: كتاب رسمي.\r\nSecond line.")
    outcome = await append_copy(imap_server(dovecot, tls), user, raw, trace_code="7Q4MZ-K2D9X")
    assert outcome.kind == "delivered", outcome
    assert outcome.remote == "127.0.0.1"
    assert "APPENDUID" in outcome.detail
    assert read_messages(dovecot, user) == [raw]


async def test_missing_folder_is_created_on_trycreate(dovecot: Dovecot) -> None:
    user = f"official@{DOMAIN}"
    server = imap_server(dovecot, folder="Official")
    assert read_messages(dovecot, user, "Official") == []
    first, second = message(user, "AAAAA-00001"), message(user, "AAAAA-00002")
    outcome = await append_copy(server, user, first, trace_code="AAAAA-00001")
    assert outcome.kind == "delivered", outcome
    outcome = await append_copy(server, user, second, trace_code="AAAAA-00002")
    assert outcome.kind == "delivered", outcome
    assert read_messages(dovecot, user, "Official") == [first, second]
    assert read_messages(dovecot, user) == []  # nothing in INBOX


async def test_maybe_done_finds_the_earlier_copy(dovecot: Dovecot) -> None:
    user = f"dedup@{DOMAIN}"
    server = imap_server(dovecot)
    raw = message(user, "DDDDD-11111")
    assert (await append_copy(server, user, raw, trace_code="DDDDD-11111")).kind == "delivered"
    again = await append_copy(server, user, raw, trace_code="DDDDD-11111", maybe_done=True)
    assert again.kind == "delivered", again
    assert "Barid-Trace found" in again.detail
    assert read_messages(dovecot, user) == [raw]
    # Another code in the same mailbox is not taken for this one.
    other = message(user, "DDDDD-22222")
    fresh = await append_copy(server, user, other, trace_code="DDDDD-22222", maybe_done=True)
    assert fresh.kind == "delivered" and "APPENDUID" in fresh.detail
    assert read_messages(dovecot, user) == [raw, other]
    # Without maybe_done the same copy is appended again: the search is what prevents it.
    blind = await append_copy(server, user, raw, trace_code="DDDDD-11111")
    assert blind.kind == "delivered"
    assert read_messages(dovecot, user) == [raw, other, raw]


async def test_maybe_done_with_a_missing_folder_appends(dovecot: Dovecot) -> None:
    user = f"dedup.newfolder@{DOMAIN}"
    server = imap_server(dovecot, folder="Official")
    raw = message(user, "EEEEE-11111")
    outcome = await append_copy(server, user, raw, trace_code="EEEEE-11111", maybe_done=True)
    assert outcome.kind == "delivered", outcome
    assert read_messages(dovecot, user, "Official") == [raw]


# ---------------------------------------------------------------- TLS


@pytest.mark.parametrize("tls", ["implicit", "starttls"])
async def test_untrusted_certificate_is_temporary(
    dovecot: Dovecot, tls: str, tmp_path: Path
) -> None:
    user = f"untrusted@{DOMAIN}"
    other_ca = dovecot_support.make_ca(tmp_path, "Other CA")
    server = imap_server(dovecot, tls, ca_file=other_ca.pem)
    outcome = await append_copy(server, user, message(user, "UUUUU-1"), trace_code="UUUUU-1")
    assert outcome.kind == "temporary"
    assert "certificate not trusted" in outcome.detail
    # The system's trust store does not know the test CA either.
    outcome = await append_copy(
        dataclasses.replace(server, ca_file=None), user, message(user, "UUUUU-2"),
        trace_code="UUUUU-2",
    )  # fmt: skip
    assert outcome.kind == "temporary" and "certificate not trusted" in outcome.detail
    assert read_messages(dovecot, user) == []


@pytest.mark.parametrize("tls", ["implicit", "starttls"])
async def test_wrong_server_name_is_temporary(dovecot: Dovecot, tls: str) -> None:
    user = f"wrongname.{tls}@{DOMAIN}"
    server = imap_server(dovecot, tls, server_name="mail.other-agency.example")
    outcome = await append_copy(server, user, message(user, "NNNNN-1"), trace_code="NNNNN-1")
    assert outcome.kind == "temporary"
    assert "certificate not trusted" in outcome.detail and "mismatch" in outcome.detail
    # The certificate's own DNS name passes while dialling 127.0.0.1.
    ok = await append_copy(
        dataclasses.replace(server, server_name="localhost"), user, message(user, "NNNNN-2"),
        trace_code="NNNNN-2",
    )  # fmt: skip
    assert ok.kind == "delivered", ok
    assert read_messages(dovecot, user) == [message(user, "NNNNN-2")]


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def append_to_fake(handle: Handler, name: str, limit: float = 5.0) -> AppendOutcome:
    """`append_copy` (STARTTLS mode) against a scripted server on a free loopback port."""
    listener = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    try:
        server = ImapServer(name, "127.0.0.1", port, "starttls", None, "", "{address}",
                            "secret-pw", timeout=limit)  # fmt: skip
        return await append_copy(server, "a@b.example", b"x\r\n", trace_code="T-1")
    finally:
        listener.close()
        await listener.wait_closed()


async def test_server_without_starttls_gets_no_login() -> None:
    """A server that does not offer STARTTLS: temporary, and LOGIN is never sent."""
    received: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"* OK IMAP4rev1 plaintext only\r\n")
        try:
            while line := await reader.readline():
                received.append(line)
                tag = line.split(b" ", 1)[0]
                if b"CAPABILITY" in line.upper():
                    writer.write(b"* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n")
                writer.write(tag + b" OK done\r\n")
                await writer.drain()
        finally:
            writer.close()

    outcome = await append_to_fake(handle, "plain")
    assert outcome.kind == "temporary"
    assert "STARTTLS" in outcome.detail
    assert not any(b"LOGIN" in line.upper() for line in received), received


async def test_plaintext_after_starttls_ok_is_refused() -> None:
    """Bytes injected after the STARTTLS OK (before the handshake) end the session."""
    received: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"* OK IMAP4rev1 ready\r\n")
        try:
            while line := await reader.readline():
                received.append(line)
                tag = line.split(b" ", 1)[0]
                if b"STARTTLS" in line.upper():
                    writer.write(tag + b" OK Begin TLS\r\n* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n")
                else:
                    writer.write(b"* CAPABILITY IMAP4rev1 STARTTLS\r\n" + tag + b" OK done\r\n")
                await writer.drain()
        finally:
            writer.close()

    outcome = await append_to_fake(handle, "inject")
    assert outcome.kind == "temporary"
    assert "plaintext data after STARTTLS" in outcome.detail, outcome
    assert not any(b"LOGIN" in line.upper() for line in received), received


# ---------------------------------------------------------------- failures


async def test_server_down_is_temporary_quickly() -> None:
    port = free_port()  # bound once, then released: nothing listens
    server = ImapServer("down", "127.0.0.1", port, "implicit", None, "", "{address}", "pw-x")
    started = time.monotonic()
    outcome = await append_copy(server, "a@b.example", b"x\r\n", trace_code="T-1")
    assert outcome.kind == "temporary" and "cannot connect" in outcome.detail
    assert time.monotonic() - started < 2.0


async def test_silent_server_is_bounded_by_timeout() -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # accepts, never greets
        writer.close()

    started = time.monotonic()
    outcome = await append_to_fake(handle, "mute", limit=0.5)
    elapsed = time.monotonic() - started
    assert outcome.kind == "temporary" and "timed out" in outcome.detail, outcome
    assert elapsed < 2.0


async def test_wrong_master_password_is_temporary(lone_dovecot: Dovecot) -> None:
    user = f"badmaster@{DOMAIN}"
    server = imap_server(lone_dovecot, password="not-the-master-pw")
    outcome = await append_copy(server, user, message(user, "PPPPP-1"), trace_code="PPPPP-1")
    assert outcome.kind == "temporary"
    assert outcome.detail.startswith("LOGIN NO")
    assert "not-the-master-pw" not in outcome.detail
    assert dovecot_support.maildir_files(lone_dovecot, user) == []


async def test_message_over_the_size_limit_is_permanent(dovecot: Dovecot) -> None:
    user = f"toobig@{DOMAIN}"
    raw = message(user, "BBBBB-1", size=100 * 1024)  # quota_max_mail_size is 64k
    outcome = await append_copy(imap_server(dovecot), user, raw, trace_code="BBBBB-1")
    assert outcome.kind == "permanent", outcome
    assert "[LIMIT]" in outcome.detail or "[TOOBIG]" in outcome.detail
    assert read_messages(dovecot, user) == []


async def test_full_mailbox_is_temporary(dovecot: Dovecot) -> None:
    user = QUOTA_USER  # a quota of one message
    server = imap_server(dovecot)
    first = await append_copy(server, user, message(user, "QQQQQ-1"), trace_code="QQQQQ-1")
    assert first.kind == "delivered", first
    second = await append_copy(server, user, message(user, "QQQQQ-2"), trace_code="QQQQQ-2")
    assert second.kind == "temporary", second
    assert "[OVERQUOTA]" in second.detail
    assert read_messages(dovecot, user) == [message(user, "QQQQQ-1")]


async def test_password_never_logged(
    lone_dovecot: Dovecot, caplog: pytest.LogCaptureFixture
) -> None:
    dovecot = lone_dovecot
    user = f"logs@{DOMAIN}"
    caplog.set_level(logging.DEBUG)  # aioimaplib's debug lines (commands sent) included
    wrong = 'wr"ong\\pass-Z3'  # quoting changes it on the wire: the scrub must still work
    outcomes: list[AppendOutcome] = []
    for server in (imap_server(dovecot), imap_server(dovecot, "starttls"),
                   imap_server(dovecot, password=wrong)):  # fmt: skip
        raw = message(user, "LLLLL-1")
        outcomes.append(await append_copy(server, user, raw, trace_code="LLLLL-1"))
    assert [o.kind for o in outcomes] == ["delivered", "delivered", "temporary"]
    assert any(r.name == "barid.delivery.imap" for r in caplog.records)
    assert any(r.name.startswith("aioimaplib") for r in caplog.records)  # debug was on
    for record in caplog.records:
        text = record.getMessage() + repr(vars(record))
        for secret in (dovecot.master_password, wrong, 'wr\\"ong\\\\pass-Z3', "Official letter"):
            assert secret not in text, record


# ---------------------------------------------------------------- validation


def test_bad_configuration_is_a_value_error(tmp_path: Path) -> None:
    base = ImapServer("x", "mail.example", 993, "implicit", None, "", "{address}*barid", "pw")
    with pytest.raises(ValueError, match="tls"):
        dataclasses.replace(base, tls="plain")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="port"):
        dataclasses.replace(base, port=0)
    with pytest.raises(ValueError, match="password"):
        dataclasses.replace(base, password="a\r\nb")
    with pytest.raises(ValueError, match="folder"):
        dataclasses.replace(base, folder="Offi*")
    with pytest.raises(ValueError, match="timeout"):
        dataclasses.replace(base, timeout=0)
    assert base.login_for("clerk@agency.example") == "clerk@agency.example*barid"
    local = dataclasses.replace(base, login="{local}")
    assert local.login_for("clerk@agency.example") == "clerk"


async def test_bad_recipient_or_trace_code_is_a_value_error() -> None:
    server = ImapServer("x", "127.0.0.1", 9, "implicit", None, "", "{address}", "pw")
    for recipient in ("no-at-sign", "a@b@c", "sp ace@b.example", "\u0639@b.example", "a\r\n@b"):
        with pytest.raises(ValueError, match="recipient"):
            await append_copy(server, recipient, b"x\r\n", trace_code="T-1")
    with pytest.raises(ValueError, match="trace_code"):
        await append_copy(server, "a@b.example", b"x\r\n", trace_code='T"1')


async def test_unreadable_ca_file_is_temporary(tmp_path: Path) -> None:
    server = ImapServer("x", "127.0.0.1", 9, "implicit", tmp_path / "missing.pem", "",
                        "{address}", "pw")  # fmt: skip
    outcome = await append_copy(server, "a@b.example", b"x\r\n", trace_code="T-1")
    assert outcome.kind == "temporary" and "trust anchors" in outcome.detail

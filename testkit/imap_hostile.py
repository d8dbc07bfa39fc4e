"""Raw IMAP over asyncio streams for the hostile-client tests (test_imap_hostile.py):
every byte sent is the test's own, every read is bounded in time, and a gateway
can be started with extra `BARID_*` settings."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import re
import shutil
import ssl
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pytest

from gateway.config import load_settings
from gateway.serve import Gateway

TIMEOUT = 5.0  # every read from the server is bounded by this
MOH = "minister@moh.gov.example"
MOF = "minister@mof.gov.example"
FORMER = "former@moh.gov.example"  # status "left": suspended, may not log in
NOBODY = "nobody@moh.gov.example"  # no such employee


class ImapTarget(Protocol):
    """What these helpers need of a running gateway: testkit/gateway.py's
    `Live` has it, and so has `Running` below."""

    @property
    def imap_port(self) -> int: ...

    @property
    def imaps_port(self) -> int: ...

    @property
    def credentials(self) -> dict[str, dict[str, Any]]: ...

    @property
    def tls(self) -> Any: ...


def password(target: ImapTarget, who: str) -> str:
    return str(target.credentials[who]["password"])


class Raw:
    """One IMAP connection on raw streams."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(
        cls, port: int, tls: ssl.SSLContext | None = None, source: str | None = None
    ) -> Raw:
        """Connect to 127.0.0.1:`port`, from the loopback address `source` if given
        (127.0.0.2, ...: a second client address on the same machine)."""
        local = (source, 0) if source else None
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port, ssl=tls, limit=1 << 20, local_addr=local),
            TIMEOUT,
        )
        return cls(reader, writer)

    async def line(self) -> bytes:
        """One line from the server; b"" once it has closed the stream."""
        return await asyncio.wait_for(self.reader.readline(), TIMEOUT)

    async def greeting(self) -> bytes:
        got = await self.line()
        assert got.startswith(b"* OK "), got
        return got

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await asyncio.wait_for(self.writer.drain(), TIMEOUT)

    async def send_hostile(self, data: bytes) -> None:
        """Send what the server may refuse half-way by closing the connection."""
        with contextlib.suppress(ConnectionError):
            await self.send(data)

    async def until_tagged(self, tag: bytes) -> tuple[list[bytes], bytes]:
        """The untagged lines, then the tagged completion of `tag`.

        Fails on a `+` continuation, or when the stream ends first."""
        untagged: list[bytes] = []
        while True:
            got = await self.line()
            assert got, f"connection closed before the answer to {tag!r}: {untagged!r}"
            if got.startswith(tag + b" "):
                return untagged, got
            assert not got.startswith(b"+"), f"unexpected continuation: {got!r}"
            untagged.append(got)

    async def command(self, tag: bytes, text: bytes) -> tuple[list[bytes], bytes]:
        await self.send(tag + b" " + text + b"\r\n")
        return await self.until_tagged(tag)

    async def ok(self, tag: bytes, text: bytes) -> list[bytes]:
        untagged, done = await self.command(tag, text)
        assert done.startswith(tag + b" OK"), (text[:80], done, untagged)
        return untagged

    async def refused(self, tag: bytes, text: bytes) -> bytes:
        """Send a command that must get a tagged NO or BAD, and nothing else."""
        untagged, done = await self.command(tag, text)
        assert_refused(tag, done)
        assert untagged == [], untagged
        return done

    async def with_literal(self, tag: bytes, head: bytes, literal: bytes, tail: bytes) -> bytes:
        """`tag head{N}`, then (after `+`) the literal and `tail`: the tagged answer.

        A tagged refusal instead of `+` is an answer too."""
        await self.send(tag + b" " + head + b"{%d}\r\n" % len(literal))
        got = await self.line()
        if got.startswith(tag + b" "):
            return got
        assert got.startswith(b"+"), got
        await self.send(literal + tail + b"\r\n")
        untagged, done = await self.until_tagged(tag)
        assert untagged == [], untagged
        return done

    async def starttls(self, tls: ssl.SSLContext) -> None:
        await self.ok(b"s1", b"STARTTLS")
        await asyncio.wait_for(self.writer.start_tls(tls), TIMEOUT)

    async def login(self, user: str, secret: str, tag: bytes = b"L1") -> bytes:
        """The tagged answer to LOGIN (quoted strings)."""
        _, done = await self.command(tag, b"LOGIN " + quoted(user) + b" " + quoted(secret))
        return done

    async def authenticate_plain(self, user: str, secret: str, tag: bytes = b"P1") -> bytes:
        """AUTHENTICATE PLAIN with the response after the `+` continuation."""
        await self.send(tag + b" AUTHENTICATE PLAIN\r\n")
        got = await self.line()
        assert got.startswith(b"+"), got
        await self.send(base64.b64encode(f"\0{user}\0{secret}".encode()) + b"\r\n")
        _, done = await self.until_tagged(tag)
        return done

    async def capability(self) -> list[bytes]:
        untagged, _ = await self.command(b"c1", b"CAPABILITY")
        caps = [u for u in untagged if u.startswith(b"* CAPABILITY ")]
        assert len(caps) == 1, untagged
        return caps[0].split()[2:]

    async def messages(self, mailbox: bytes) -> int:
        untagged = await self.ok(b"st", b"STATUS " + mailbox + b" (MESSAGES)")
        found = [re.search(rb"\(MESSAGES (\d+)\)", u) for u in untagged]
        counts = [int(m.group(1)) for m in found if m]
        assert len(counts) == 1, untagged
        return counts[0]

    async def closed(self) -> list[bytes]:
        """Read until the server closes the stream: the lines read before that.
        Times out (fails) if the server keeps the connection open."""
        rest: list[bytes] = []
        while True:
            try:
                got = await self.line()
            except (ConnectionError, ssl.SSLError):
                return rest
            if not got:
                return rest
            rest.append(got)

    async def until_tagged_or_closed(self, tag: bytes) -> list[bytes]:
        """Every line up to the tagged answer to `tag`, or up to the end of the stream."""
        lines: list[bytes] = []
        while True:
            try:
                got = await self.line()
            except (ConnectionError, ssl.SSLError):
                return lines
            if not got:
                return lines
            lines.append(got)
            if got.startswith(tag + b" "):
                return lines

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.writer.wait_closed(), TIMEOUT)


def assert_refused(tag: bytes, done: bytes) -> None:
    assert done.startswith((tag + b" NO", tag + b" BAD")), done


def quoted(text: str) -> bytes:
    return b'"' + text.encode().replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def capabilities_of(greeting: bytes) -> list[bytes]:
    """The capabilities in a greeting's `[CAPABILITY ...]` response code."""
    match = re.search(rb"\[CAPABILITY ([^\]]*)\]", greeting)
    assert match, greeting
    return match.group(1).split()


def message(size: int, subject: str = "hostile test") -> bytes:
    """A plain RFC 5322 message of exactly `size` octets."""
    head = (
        f"From: {MOH}\r\nTo: {MOH}\r\nSubject: {subject}\r\n"
        f"Date: Mon, 01 Jan 2024 00:00:00 +0000\r\n"
        f"Message-ID: <hostile-{size}@moh.gov.example>\r\n\r\n"
    ).encode()
    line = b"x" * 76 + b"\r\n"
    remaining = size - len(head)
    full = (remaining - 2) // len(line)
    last = remaining - full * len(line) - 2
    raw = head + line * full + b"x" * last + b"\r\n"
    assert len(raw) == size
    return raw


@dataclass
class Conns:
    """Connections a test opened; the fixture closes whatever is left open."""

    open_: list[Raw] = field(default_factory=list)

    async def raw(
        self, port: int, tls: ssl.SSLContext | None = None, source: str | None = None
    ) -> Raw:
        conn = await Raw.open(port, tls, source)
        self.open_.append(conn)
        return conn

    async def greeted(
        self, port: int, tls: ssl.SSLContext | None = None, source: str | None = None
    ) -> Raw:
        conn = await self.raw(port, tls, source)
        await conn.greeting()
        return conn

    async def logged_in(
        self, target: ImapTarget, who: str, *, implicit: bool = False, source: str | None = None
    ) -> Raw:
        """A connection logged in as `who` (STARTTLS, or the implicit-TLS port)."""
        if implicit:
            conn = await self.greeted(target.imaps_port, target.tls, source)
        else:
            conn = await self.greeted(target.imap_port, source=source)
            await conn.starttls(target.tls)
        done = await conn.login(who, password(target, who))
        assert done.startswith(b"L1 OK"), done
        return conn

    async def aclose(self) -> None:
        for conn in self.open_:
            await conn.close()
        self.open_.clear()


async def healthy_session(conn: Raw, target: ImapTarget, who: str = MOH) -> None:
    """On a freshly greeted STARTTLS connection: STARTTLS, LOGIN, SELECT INBOX, LOGOUT."""
    await conn.starttls(target.tls)
    done = await conn.login(who, password(target, who))
    assert done.startswith(b"L1 OK"), done
    untagged = await conn.ok(b"h1", b"SELECT INBOX")
    assert any(u.endswith(b" EXISTS\r\n") for u in untagged), untagged
    await conn.ok(b"h2", b"NOOP")
    await conn.ok(b"h3", b"LOGOUT")


async def assert_healthy(target: ImapTarget, who: str = MOH) -> None:
    """A fresh connection gets the greeting, STARTTLS, LOGIN and SELECT INBOX."""
    conn = await Raw.open(target.imap_port)
    try:
        await conn.greeting()
        await healthy_session(conn, target, who)
    finally:
        await conn.close()


def error_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """ERROR (or worse) records logged so far in this test, setup and teardown included."""
    seen: dict[int, logging.LogRecord] = {}
    for record in [*caplog.get_records("setup"), *caplog.get_records("call"), *caplog.records]:
        seen[id(record)] = record
    return [r for r in seen.values() if r.levelno >= logging.ERROR]


def assert_no_server_errors(caplog: pytest.LogCaptureFixture) -> None:
    errors = error_records(caplog)
    assert not errors, [(r.name, r.getMessage(), r.exc_text) for r in errors]


# ---- a gateway with settings of its own ------------------------------------------------


@dataclass
class Running:
    gateway: Gateway
    credentials: dict[str, dict[str, Any]]
    tls: ssl.SSLContext

    @property
    def imap_port(self) -> int:
        return self.gateway.imap_ports["imap"]

    @property
    def imaps_port(self) -> int:
        return self.gateway.imap_ports["imaps"]


@contextlib.asynccontextmanager
async def gateway_with(
    template: Path,
    data: Path,
    credentials: dict[str, dict[str, Any]],
    overrides: Mapping[str, str],
) -> AsyncIterator[Running]:
    """A whole gateway on ephemeral ports, started as the `live` fixture starts it,
    with extra `BARID_*` environment overrides."""
    shutil.copytree(template, data)
    env = {"BARID_SMTP__SUBMISSION_PORT": "0", "BARID_SMTP__SMTPS_PORT": "0", "BARID_SMTP__TRANSFER_PORT": "0",
           "BARID_IMAP__PORT": "0", "BARID_IMAP__IMAPS_PORT": "0",
           "BARID_HTTP__PORT": "0", "BARID_HTTP__ADMIN_PORT": "0", "BARID_SMTP__MIN_FREE_DISK_MB": "0", **overrides}  # fmt: skip
    settings = load_settings(data / "barid.toml", environ=env)
    gateway = Gateway(settings)
    await gateway.start()
    try:
        tls = ssl.create_default_context(cafile=str(settings.tls_cert))
        tls.check_hostname = False
        yield Running(gateway, credentials, tls)
    finally:
        await gateway.stop()

"""Helpers for the SMTP protocol tests: a directory with two employees, TLS
material from `barid init`, and listeners with a recording pipeline."""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.config import load_settings
from gateway.intake.smtp.listeners import Listener, start_listener, stop_listeners
from gateway.intake.smtp.sessions import SessionLimits, SmtpShared, shared_for
from gateway.intake.submission import Identity, SubmissionHandler
from gateway.serve import bind
from gateway.store.audit import AUDIT_KEY_PURPOSE
from gateway.store.db import create_engine, session_factory
from gateway.store.directory import Directory
from keys.gateway_keys import load_gateway_keys
from keys.tls import load_server_context
from policies.holder import PolicyHolder
from testkit.cli import run_cli

PASSWORD = "correct horse battery"
POLICY = """version: 1
rules:
  - id: moh-internal
    description: MOH staff write to each other.
    sender: {agency: MOH}
    recipient: {agency: MOH}
    effect: allow
"""


@dataclass
class Recording:
    """A pipeline that records what reached it and answers a fixed reply."""

    reply: str = "250 2.0.0 Accepted TEST/2026/000001"
    calls: list[tuple[str, list[str], bytes]] = field(default_factory=list)
    fail: bool = False

    async def process(
        self,
        identity: Identity,
        peer: str,
        mail_from: str,
        recipients: list[str],
        raw: bytes,
        sent_last_hour: int,
    ) -> str:
        if self.fail:
            raise RuntimeError("secret internal detail")
        self.calls.append((mail_from, recipients, raw))
        return self.reply


@dataclass
class Running:
    submission: int
    smtps: int
    pipeline: Recording
    handler: SubmissionHandler
    client_tls: ssl.SSLContext
    listeners: list[Listener]
    shared: SmtpShared


def client_context(cert: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(cert))
    ctx.check_hostname = False
    return ctx


async def start(
    config: Path,
    *,
    max_connections: int = 50,
    per_address: int = 50,
    max_size: int = 1 << 20,
    budget: int = 0,
    **limits: Any,
) -> Any:
    """Submission and SMTPS listeners on free ports; `limits` are SessionLimits fields."""
    settings = load_settings(config, environ={})
    engine = create_engine(settings.database_url)
    keys = load_gateway_keys(settings.keys_dir)
    directory = Directory(session_factory(engine), keys.derive(AUDIT_KEY_PURPOSE))
    holder = PolicyHolder.load(POLICY, await directory.snapshot())
    pipeline = Recording()

    async def sent(_: str) -> int:
        return 0

    handler = SubmissionHandler(
        directory, lambda: holder, pipeline, max_recipients=5, sent_last_hour=sent
    )
    tls = load_server_context(settings.tls_cert, settings.tls_key)
    limits.setdefault("spool_dir", settings.data_dir / "spool")
    shared = shared_for(
        max_connections=max_connections,
        per_address=per_address,
        budget_bytes=budget or 4 * max_size,
        limits=SessionLimits(**limits),
    )
    listeners = [
        await start_listener(
            name,
            bind("127.0.0.1", 0),
            handler,
            hostname="mx.test",
            tls_context=tls,
            implicit_tls=implicit,
            max_message_size=max_size,
            shared=shared,
        )
        for name, implicit in (("submission", False), ("smtps", True))
    ]
    running = Running(
        listeners[0].port, listeners[1].port, pipeline, handler,
        client_context(settings.tls_cert), listeners, shared,
    )  # fmt: skip

    async def stop() -> None:
        await stop_listeners(listeners, 2.0)
        await engine.dispose()

    return running, stop


async def raw_session(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    greeting = await reader.readline()
    assert greeting.startswith(b"220 "), greeting
    return reader, writer


async def command(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, line: bytes) -> bytes:
    """Send one command; return the full (possibly multi-line) reply."""
    writer.write(line + b"\r\n")
    await writer.drain()
    return await read_reply(reader)


async def read_reply(reader: asyncio.StreamReader) -> bytes:
    out = b""
    while True:
        line = await asyncio.wait_for(reader.readline(), 10)
        out += line
        if len(line) < 4 or line[3:4] != b"-":
            return out


def plain_auth(user: str, password: str) -> bytes:
    import base64

    return b"AUTH PLAIN " + base64.b64encode(f"\0{user}\0{password}".encode())


async def authed(
    port: int,
    tls: ssl.SSLContext,
    *,
    user: str = "a@moh.gov.example",
    source: str = "127.0.0.1",
    starttls: bool = True,
    password: str = PASSWORD,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A session on the submission port (STARTTLS) from `source`, logged in as `user`."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    assert (await read_reply(reader)).startswith(b"220"), "no greeting"
    await command(reader, writer, b"EHLO client.test")
    if starttls:
        assert (await command(reader, writer, b"STARTTLS")).startswith(b"220")
        await writer.start_tls(tls)
        await command(reader, writer, b"EHLO client.test")
    reply = await command(reader, writer, plain_auth(user, password))
    assert reply.startswith(b"235"), reply
    return reader, writer


async def closed(reader: asyncio.StreamReader, seconds: float = 10.0) -> bool:
    """True when the server closes the connection within `seconds` (EOF or reset)."""
    try:
        async with asyncio.timeout(seconds):
            while await reader.read(4096):
                pass
    except (ConnectionError, ssl.SSLError):
        return True
    except TimeoutError:
        return False
    return True


def make_smtp_directory(data: Path) -> None:
    """`barid init` in `data`, agency MOH, employees a and b (active, password
    PASSWORD) and c (suspended)."""
    run_cli(None, "init", "--data-dir", str(data))
    run_cli(data, "agency", "add", "MOH", "--name-en", "Health", "--kind", "ministry",
            "--domain", "moh.gov.example")  # fmt: skip
    for who in ("a", "b", "c"):
        run_cli(data, "employee", "add", f"{who}@moh.gov.example", "--agency", "MOH",
                "--name-en", who.upper(), "--password-stdin", stdin=PASSWORD)  # fmt: skip
    run_cli(data, "employee", "suspend", "c@moh.gov.example")

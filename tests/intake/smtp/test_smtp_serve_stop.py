"""SIGTERM to `barid serve` under load: every session gets a reply, messages being
received finish within the grace period, and nothing acknowledged is lost."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
from pathlib import Path
from typing import Any

from gateway.config import load_settings
from gateway.store.audit import AUDIT_KEY_PURPOSE
from gateway.store.db import create_engine, session_factory
from gateway.store.messages import MessageStore
from keys.gateway_keys import load_gateway_keys
from testkit.messages import pgp_mime
from testkit.serve import Server
from testkit.smtp import authed, client_context, command, read_reply

MOH = "minister@moh.gov.example"
RECIPIENT = "registrar@moh.gov.example"
STOPPED = b"421 4.3.2"


async def _envelope(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    assert (await command(reader, writer, f"MAIL FROM:<{MOH}>".encode())).startswith(b"250")
    assert (await command(reader, writer, f"RCPT TO:<{RECIPIENT}>".encode())).startswith(b"250")
    assert (await command(reader, writer, b"DATA")).startswith(b"354")


def _wire(raw: bytes) -> bytes:
    return raw.replace(b"\r\n.", b"\r\n..") + b".\r\n"


async def _say(writer: asyncio.StreamWriter, data: bytes) -> None:
    """Write; a connection the gateway closed after its 421 shows in the reply read next."""
    writer.write(data)
    with contextlib.suppress(ConnectionError):
        await writer.drain()


async def _keep_sending(
    session: tuple[asyncio.StreamReader, asyncio.StreamWriter], messages: list[bytes],
    acked: list[tuple[str, bytes]],
) -> bytes:  # fmt: skip
    """Submit until the gateway says it is stopping; every command must get a reply."""
    reader, writer = session
    for raw in messages:
        await _say(writer, f"MAIL FROM:<{MOH}>\r\n".encode())
        reply = await read_reply(reader)
        if not reply.startswith(b"250"):
            return reply
        for line in (f"RCPT TO:<{RECIPIENT}>\r\n".encode(), b"DATA\r\n"):
            await _say(writer, line)
            reply = await read_reply(reader)
            if not reply.startswith((b"250", b"354")):
                return reply
        await _say(writer, _wire(raw))
        reply = await read_reply(reader)
        if reply.startswith(b"250"):
            acked.append((reply.split()[-1].decode(), raw))
        else:
            return reply
    return await read_reply(reader)


async def test_sigterm_under_load_answers_every_session_and_loses_nothing(
    demo_template: Path, tmp_path: Path, gnupghome: Path, credentials: dict[str, Any]
) -> None:
    data = tmp_path / "d"
    shutil.copytree(demo_template, data)
    code = credentials[MOH]["code"]
    password = credentials[MOH]["password"]
    messages = [pgp_mime(gnupghome, MOH, MOH, [RECIPIENT], extra=[("Barid-Employee-Code", code)])
                for _ in range(12)]  # fmt: skip
    server = Server(data)
    server.start()
    tls = client_context(data / "tls" / "cert.pem")
    acked: list[tuple[str, bytes]] = []
    try:
        open_session = lambda: authed(server.port, tls, user=MOH, password=password)  # noqa: E731
        idle = [await open_session() for _ in range(3)]
        halfway = [await open_session() for _ in range(3)]
        loaded = [await open_session() for _ in range(3)]
        for (reader, writer), raw in zip(halfway, messages, strict=False):
            await _envelope(reader, writer)
            writer.write(_wire(raw)[: len(raw) // 2])
            await writer.drain()
        senders = [asyncio.create_task(_keep_sending(s, messages[3 + 3 * i : 6 + 3 * i], acked))
                   for i, s in enumerate(loaded)]  # fmt: skip
        await asyncio.sleep(0.5)
        assert server.proc is not None
        server.proc.send_signal(signal.SIGTERM)
        for reader, _ in idle:
            assert (await read_reply(reader)).startswith(STOPPED)
        for (reader, writer), raw in zip(halfway, messages, strict=False):
            writer.write(_wire(raw)[len(raw) // 2 :])
            await writer.drain()
            reply = await read_reply(reader)
            assert reply.startswith(b"250"), reply  # finished within the grace period
            acked.append((reply.split()[-1].decode(), raw))
            assert (await read_reply(reader)).startswith(STOPPED)
        async with asyncio.timeout(60):
            finals = await asyncio.gather(*senders)
        assert all(final.startswith(STOPPED) for final in finals), finals
        _, errors = await asyncio.to_thread(server.proc.communicate, None, 60)
        assert server.proc.returncode == 0, errors
    finally:
        server.stop()
    assert len(acked) >= 3
    settings = load_settings(data / "barid.toml", environ={})
    keys = load_gateway_keys(settings.keys_dir)
    engine = create_engine(settings.database_url)
    try:
        store = MessageStore(
            session_factory(engine), keys.master_key, keys.derive(AUDIT_KEY_PURPOSE)
        )
        for registry, raw in acked:
            message = await store.message_by_registry(registry)
            assert message is not None, registry
            assert await store.load_original(message.id) == raw
    finally:
        await engine.dispose()

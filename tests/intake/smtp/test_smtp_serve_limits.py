"""`barid serve` as a process under hostile load: memory stays bounded while twelve
24 MB messages are in flight (its own VmRSS), and spool files do not outlive it."""

from __future__ import annotations

import asyncio
from pathlib import Path

from testkit.serve import Server
from testkit.smtp import POLICY, authed, client_context, command

MB = 1024 * 1024
SESSIONS = 12
MESSAGE_BYTES = 24 * MB
# Documented in docs/SUBMISSION.md and docs/BENCHMARKS.md: twelve unfinished 24 MB
# transfers (288 MB on the wire) may raise the gateway's VmRSS by at most this much.
RSS_GROWTH_BOUND_KIB = 64 * 1024
LINE = b"x" * 76 + b"\r\n"
CHUNK = LINE * (MB // len(LINE))


async def _push(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    assert (await command(reader, writer, b"MAIL FROM:<a@moh.gov.example>")).startswith(b"250")
    assert (await command(reader, writer, b"RCPT TO:<b@moh.gov.example>")).startswith(b"250")
    assert (await command(reader, writer, b"DATA")).startswith(b"354")
    writer.write(b"From: a@moh.gov.example\r\nTo: b@moh.gov.example\r\nSubject: big\r\n\r\n")
    sent = 0
    while sent < MESSAGE_BYTES:
        writer.write(CHUNK)
        await writer.drain()
        sent += len(CHUNK)


async def test_twelve_unfinished_24mb_transfers_keep_rss_bounded(gateway_config: Path) -> None:
    data = gateway_config.parent
    (data / "policies.yaml").write_text(POLICY)
    server = Server(data)
    server.start()
    try:
        tls = client_context(data / "tls" / "cert.pem")
        sessions = [await authed(server.port, tls) for _ in range(SESSIONS)]
        before = server.rss_kib()
        peak = before

        async def sample() -> None:
            nonlocal peak
            while True:
                peak = max(peak, server.rss_kib())
                await asyncio.sleep(0.05)

        sampler = asyncio.create_task(sample())
        async with asyncio.timeout(300):
            await asyncio.gather(*(_push(r, w) for r, w in sessions))
        await asyncio.sleep(1.0)  # the last chunks reach the spool
        sampler.cancel()
        peak = max(peak, server.rss_kib())
        spooled = sum(f.stat().st_size for f in (data / "spool").glob("*.part"))
        assert spooled >= SESSIONS * (MESSAGE_BYTES - 2 * MB)  # the bytes are on disk
        print(f"VmRSS before {before} KiB, peak {peak} KiB, growth {peak - before} KiB")
        assert peak - before < RSS_GROWTH_BOUND_KIB, (before, peak)
        for _, writer in sessions:
            writer.transport.abort()
        await asyncio.sleep(1.0)
        assert list((data / "spool").glob("*.part")) == []  # removed with the sessions
    finally:
        server.stop()

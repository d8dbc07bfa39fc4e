"""Hostile load on the SMTP listeners, over real sockets and TLS: fair slots, a trickle
cut at the minimum rate, strict edges, the in-flight budget, spooling, the stop."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

from gateway.intake.smtp.listeners import stop_listeners
from testkit.smtp import authed, closed, command, read_reply, start

A = "a@moh.gov.example"
B = "b@moh.gov.example"
HEAD = b"From: a@moh.gov.example\r\nTo: b@moh.gov.example\r\nSubject: t\r\n\r\n"


async def envelope(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                   mail: bytes = b"MAIL FROM:<a@moh.gov.example>") -> None:  # fmt: skip
    assert (await command(reader, writer, mail)).startswith(b"250")
    assert (await command(reader, writer, b"RCPT TO:<b@moh.gov.example>")).startswith(b"250")
    assert (await command(reader, writer, b"DATA")).startswith(b"354")


async def send(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, body: bytes) -> bytes:
    writer.write(body + b".\r\n")
    await writer.drain()
    return await read_reply(reader)


async def greeting(port: int, source: str, tls: ssl.SSLContext | None = None) -> bytes:
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, local_addr=(source, 0), ssl=tls
    )
    try:
        return await asyncio.wait_for(reader.readline(), 10)
    finally:
        writer.close()


async def test_one_address_at_its_cap_does_not_stop_another(gateway_config: Path) -> None:
    running, stop = await start(gateway_config, per_address=3)
    try:
        held = [await authed(running.submission, running.client_tls) for _ in range(3)]
        assert (await greeting(running.submission, "127.0.0.1")).startswith(b"421 4.7.0")
        smtps = await greeting(running.smtps, "127.0.0.1", running.client_tls)
        assert smtps.startswith(b"421 4.7.0")  # one table for both listeners
        reader, writer = await authed(running.submission, running.client_tls, source="127.0.0.2")
        await envelope(reader, writer)
        assert (await send(reader, writer, HEAD + b"hello\r\n")).startswith(b"250")
        assert len(running.pipeline.calls) == 1
        for _, w in [*held, (reader, writer)]:
            w.close()
    finally:
        await stop()


async def test_when_slots_are_short_addresses_holding_many_are_refused_first(
    gateway_config: Path,
) -> None:
    running, stop = await start(gateway_config, max_connections=10, per_address=20)
    try:
        writers = []
        for _ in range(9):  # the 10th slot is the reserve: 127.0.0.1 holds 9 >= 20 // 4
            reader, writer = await asyncio.open_connection("127.0.0.1", running.submission)
            assert (await reader.readline()).startswith(b"220")
            writers.append(writer)
        assert (await greeting(running.submission, "127.0.0.1")).startswith(b"421 4.7.0")
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", running.submission, local_addr=("127.0.0.2", 0)
        )
        assert (await reader.readline()).startswith(b"220")  # holds none: gets the reserve
        writers.append(writer)
        assert (await greeting(running.submission, "127.0.0.3")).startswith(b"421 4.7.0")  # full
        for w in writers:
            w.close()
    finally:
        await stop()


async def test_a_trickled_data_is_cut_at_the_minimum_rate(gateway_config: Path) -> None:
    running, stop = await start(gateway_config, min_data_rate=1000, rate_window=0.5)
    try:
        reader, writer = await authed(running.submission, running.client_tls)
        await envelope(reader, writer)
        writer.write(HEAD)
        reply = b""
        for _ in range(40):  # 20 octets every 0.1 s: 200 octets/s
            writer.write(b"x" * 18 + b"\r\n")
            await writer.drain()
            await asyncio.sleep(0.1)
            if reader.at_eof() or len(reader._buffer):  # type: ignore[attr-defined]
                break
        reply = await read_reply(reader)
        assert reply.startswith(b"451 4.4.2"), reply
        assert await closed(reader)
        assert running.pipeline.calls == []
    finally:
        await stop()


async def test_a_message_past_its_deadline_is_cut(gateway_config: Path) -> None:
    running, stop = await start(gateway_config, min_data_rate=0, data_timeout=0.6)
    try:
        reader, writer = await authed(running.submission, running.client_tls)
        await envelope(reader, writer)
        writer.write(HEAD + b"part\r\n")
        await writer.drain()
        reply = await read_reply(reader)
        assert reply.startswith(b"451 4.4.2") and b"in time" in reply, reply
        assert await closed(reader)
        assert running.pipeline.calls == []
    finally:
        await stop()


async def test_a_half_typed_command_is_cut_and_idle_sessions_told(gateway_config: Path) -> None:
    running, stop = await start(gateway_config, command_timeout=0.5, idle_timeout=1.5)
    try:
        reader, writer = await authed(running.submission, running.client_tls)
        writer.write(b"NOO")
        await writer.drain()
        assert (await read_reply(reader)).startswith(b"421 4.4.2")
        assert await closed(reader)
        reader, writer = await authed(running.submission, running.client_tls)
        assert (await read_reply(reader)).startswith(b"421 4.4.2 Idle")
        assert await closed(reader)
    finally:
        await stop()


async def test_commands_must_end_in_crlf(gateway_config: Path) -> None:
    running, stop = await start(gateway_config)
    try:
        reader, writer = await authed(running.submission, running.client_tls)
        for _ in range(2):
            writer.write(b"NOOP\n")
            await writer.drain()
            assert (await read_reply(reader)).startswith(b"500 5.5.2")
        assert (await command(reader, writer, b"NOOP")).startswith(b"250")  # CRLF is fine
        writer.write(b"MAIL FROM:<a@moh.gov.example>\n")  # not carried out
        await writer.drain()
        assert (await read_reply(reader)).startswith(b"500 5.5.2")
        assert await closed(reader)  # the third bare LF ends the session
        assert running.pipeline.calls == []
    finally:
        await stop()


async def test_strict_edges_get_their_replies_and_nothing_is_stored(gateway_config: Path) -> None:
    running, stop = await start(gateway_config)
    try:
        reader, writer = await authed(running.submission, running.client_tls)
        cases = [
            (HEAD + b"y" * 999 + b"\r\n", b"550 5.6.0"),
            (HEAD + b"ok\r\n" + b"z" * 50_000 + b"\r\nend\r\n", b"550 5.6.0"),
            (b"Subject: \xd8\xb3\xd9\x84\xd8\xa7\xd9\x85\r\n" + HEAD, b"550 5.6.7"),
        ]
        for body, expected in cases:
            await envelope(reader, writer)
            reply = await send(reader, writer, body)
            assert reply.startswith(expected), (body[:60], reply)
        assert running.pipeline.calls == []
        # the limits themselves are fine: 998 octets, 8-bit text in the body, and
        # 8-bit header text under SMTPUTF8
        await envelope(reader, writer)
        assert (await send(reader, writer, HEAD + b"y" * 998 + b"\r\n")).startswith(b"250")
        await envelope(reader, writer)
        assert (await send(reader, writer, HEAD + "سلام\r\n".encode())).startswith(b"250")
        await envelope(reader, writer, b"MAIL FROM:<a@moh.gov.example> SMTPUTF8")
        utf8 = "Subject: سلام\r\n".encode() + HEAD
        assert (await send(reader, writer, utf8)).startswith(b"250")
        assert [raw for _, _, raw in running.pipeline.calls] == [
            HEAD + b"y" * 998 + b"\r\n", HEAD + "سلام\r\n".encode(), utf8,
        ]  # fmt: skip
        writer.close()
    finally:
        await stop()


async def test_the_line_limit_is_named_in_the_reply(gateway_config: Path) -> None:
    running, stop = await start(gateway_config)
    try:
        reader, writer = await authed(running.submission, running.client_tls)
        await envelope(reader, writer)
        reply = await send(reader, writer, HEAD + b"q" * 5000 + b"\r\n")
        assert reply.startswith(b"550 5.6.0") and b"998" in reply, reply
        assert (await command(reader, writer, b"NOOP")).startswith(b"250")  # session goes on
        writer.close()
    finally:
        await stop()


async def test_over_the_in_flight_budget_new_data_gets_452(gateway_config: Path) -> None:
    running, stop = await start(gateway_config, spool_threshold=64 * 1024, budget=100 * 1024)
    try:
        first = await authed(running.submission, running.client_tls)
        await envelope(*first)
        first[1].write(HEAD + b"a\r\n")  # holds its 64 KiB share while it arrives
        await first[1].drain()
        second = await authed(running.submission, running.client_tls)
        assert (await command(*second, b"MAIL FROM:<a@moh.gov.example>")).startswith(b"250")
        assert (await command(*second, b"RCPT TO:<b@moh.gov.example>")).startswith(b"250")
        assert (await command(*second, b"DATA")).startswith(b"452 4.3.1")
        assert (await command(*second, b"NOOP")).startswith(b"250")  # nothing else degrades
        assert (await send(*first, b"")).startswith(b"250")
        assert (await command(*second, b"DATA")).startswith(b"354")  # the share is back
        assert (await send(*second, HEAD + b"b\r\n")).startswith(b"250")
        assert running.shared.budget.used == 0
        for _, w in (first, second):
            w.close()
    finally:
        await stop()


async def test_a_large_message_is_spooled_encrypted_and_removed(gateway_config: Path) -> None:
    running, stop = await start(gateway_config, spool_threshold=64 * 1024, max_size=4 << 20)
    spool = gateway_config.parent / "spool"
    try:
        reader, writer = await authed(running.submission, running.client_tls)
        await envelope(reader, writer)
        marker = b"PLAINTEXT-MARKER-0123456789"
        body = HEAD + (marker + b"." * 40 + b"\r\n") * 40_000 + b".dot-stuffed\r\n"
        writer.write(body[:2_000_000])
        await writer.drain()
        await asyncio.sleep(0.5)
        files = list(spool.glob("*.part"))
        assert len(files) == 1
        assert marker not in files[0].read_bytes()  # sealed with a key held in memory only
        writer.write(body[2_000_000:].replace(b"\r\n.dot", b"\r\n..dot") + b".\r\n")
        await writer.drain()
        assert (await read_reply(reader)).startswith(b"250")
        assert running.pipeline.calls[-1][2] == body
        assert list(spool.glob("*.part")) == []
        # a message cut off mid-way leaves nothing behind either
        await envelope(reader, writer)
        writer.write(body[:1_000_000])
        await writer.drain()
        await asyncio.sleep(0.3)
        writer.close()
        await asyncio.sleep(0.5)
        assert list(spool.glob("*.part")) == []
        assert running.shared.budget.used == 0
    finally:
        await stop()


async def test_stop_answers_idle_sessions_and_lets_data_finish(gateway_config: Path) -> None:
    running, stop = await start(gateway_config)
    try:
        idle = await authed(running.submission, running.client_tls)
        busy = await authed(running.submission, running.client_tls)
        await envelope(*busy)
        busy[1].write(HEAD + b"first half\r\n")
        await busy[1].drain()
        await asyncio.sleep(0.1)
        stopping = asyncio.create_task(stop_listeners(running.listeners, 10.0))
        assert (await read_reply(idle[0])).startswith(b"421 4.3.2")
        assert await closed(idle[0])
        with_reply = await send(*busy, b"second half\r\n")
        assert with_reply.startswith(b"250"), with_reply
        assert (await read_reply(busy[0])).startswith(b"421 4.3.2")
        assert await closed(busy[0])
        async with asyncio.timeout(5):
            await stopping
        assert running.pipeline.calls[-1][2] == HEAD + b"first half\r\nsecond half\r\n"
    finally:
        await stop()


async def test_stop_cuts_data_still_arriving_after_the_grace_period(gateway_config: Path) -> None:
    running, stop = await start(gateway_config)
    try:
        busy = await authed(running.submission, running.client_tls)
        await envelope(*busy)
        busy[1].write(HEAD + b"never finished\r\n")
        await busy[1].drain()
        await asyncio.sleep(0.1)
        await stop_listeners(running.listeners, 0.5)
        assert (await read_reply(busy[0])).startswith(b"421 4.3.2")
        assert running.pipeline.calls == []
    finally:
        await stop()

"""SMTP protocol rules over real sockets and real TLS: TLS first, AUTH, DATA reading."""

from __future__ import annotations

import asyncio
import base64
import ssl

import aiosmtplib
import pytest

from testkit.smtp import PASSWORD, Running, command, raw_session, read_reply, start

A = "a@moh.gov.example"
B = "b@moh.gov.example"
MESSAGE = b"From: a@moh.gov.example\r\nTo: b@moh.gov.example\r\nSubject: t\r\n\r\nhello\r\n"


def plain(user: str, password: str) -> bytes:
    return base64.b64encode(f"\0{user}\0{password}".encode())


async def starttls_client(smtp: Running) -> aiosmtplib.SMTP:
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=smtp.submission, start_tls=True,
                             tls_context=smtp.client_tls, timeout=10)  # fmt: skip
    await client.connect()
    await client.ehlo()
    return client


async def test_nothing_before_starttls(smtp: Running) -> None:
    reader, writer = await raw_session(smtp.submission)
    ehlo = await command(reader, writer, b"EHLO client.test")
    assert b"STARTTLS" in ehlo and b"AUTH" not in ehlo
    assert (await command(reader, writer, b"AUTH PLAIN " + plain(A, PASSWORD))).startswith(
        b"530 5.7.0"
    )
    assert (await command(reader, writer, b"MAIL FROM:<a@moh.gov.example>")).startswith(
        b"530 5.7.0"
    )
    assert (await command(reader, writer, b"RCPT TO:<b@moh.gov.example>")).startswith(b"530 5.7.0")
    assert (await command(reader, writer, b"DATA")).startswith(b"530 5.7.0")
    assert (await command(reader, writer, b"VRFY a@moh.gov.example")).startswith(b"502")
    writer.close()


async def test_command_pipelined_after_starttls_is_not_executed(smtp: Running) -> None:
    reader, writer = await raw_session(smtp.submission)
    await command(reader, writer, b"EHLO client.test")
    # STARTTLS and an injected command in one packet (CVE-2011-0411 style)
    writer.write(b"STARTTLS\r\nMAIL FROM:<a@moh.gov.example>\r\n")
    await writer.drain()
    assert (await read_reply(reader)).startswith(b"220")
    await writer.start_tls(smtp.client_tls)
    # The injected MAIL was discarded: the first reply after TLS is to our EHLO.
    ehlo = await command(reader, writer, b"EHLO client.test")
    assert ehlo.startswith(b"250") and b"AUTH LOGIN PLAIN" in ehlo
    writer.close()


async def test_auth_plain_and_login_over_starttls(smtp: Running) -> None:
    client = await starttls_client(smtp)
    try:
        with pytest.raises(aiosmtplib.SMTPAuthenticationError) as err:
            await client.login(A, "wrong password!")
        assert err.value.code == 535 and "5.7.8" in err.value.message
        response = await client.auth_login(A, PASSWORD)
        assert response.code == 235
    finally:
        client.close()
    client = await starttls_client(smtp)
    try:
        assert (await client.auth_plain(A, PASSWORD)).code == 235
    finally:
        client.close()


async def test_unknown_suspended_and_wrong_password_all_get_535(smtp: Running) -> None:
    for user, password in [("nobody@moh.gov.example", PASSWORD), ("c@moh.gov.example", PASSWORD),
                           (A, "not the password")]:  # fmt: skip
        client = await starttls_client(smtp)
        try:
            with pytest.raises(aiosmtplib.SMTPAuthenticationError) as err:
                await client.auth_plain(user, password)
            assert err.value.code == 535 and "5.7.8" in err.value.message
        finally:
            client.close()


async def test_failed_logins_are_throttled_per_account(smtp: Running) -> None:
    client = await starttls_client(smtp)
    try:
        codes = []
        for _ in range(6):
            try:
                await client.auth_plain(A, "bad password here")
            except aiosmtplib.SMTPAuthenticationError as exc:
                codes.append(exc.code)
        assert codes[:5] == [535] * 5 and codes[5] == 454
    finally:
        client.close()
    # even the right password is refused while throttled
    client = await starttls_client(smtp)
    try:
        with pytest.raises(aiosmtplib.SMTPAuthenticationError) as err:
            await client.auth_plain(A, PASSWORD)
        assert err.value.code == 454
    finally:
        client.close()


async def test_implicit_tls_offers_auth(smtp: Running) -> None:
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=smtp.smtps, use_tls=True,
                             tls_context=smtp.client_tls, timeout=10)  # fmt: skip
    await client.connect()
    try:
        await client.ehlo()
        assert "auth" in client.esmtp_extensions
        assert (await client.auth_plain(A, PASSWORD)).code == 235
        await client.mail(A)
        await client.rcpt(B)
        response = await client.data(MESSAGE)
        assert response.code == 250
    finally:
        client.close()
    assert smtp.pipeline.calls[-1] == (A, [B], MESSAGE)


async def test_mail_from_must_be_the_authenticated_employee(smtp: Running) -> None:
    client = await starttls_client(smtp)
    try:
        await client.auth_plain(A, PASSWORD)
        for sender in [B, "", "A@evil.example"]:
            with pytest.raises(aiosmtplib.SMTPSenderRefused) as err:
                await client.mail(sender)
            assert err.value.code == 553 and "5.7.1" in err.value.message
        assert (await client.mail("A@MOH.gov.example")).code == 250  # case-insensitive
    finally:
        client.close()


async def test_mail_before_auth_is_refused(smtp: Running) -> None:
    client = await starttls_client(smtp)
    try:
        with pytest.raises(aiosmtplib.SMTPSenderRefused) as err:
            await client.mail(A)
        assert err.value.code == 530 and "5.7.0" in err.value.message
    finally:
        client.close()


async def test_recipients_get_their_own_replies(smtp: Running) -> None:
    client = await starttls_client(smtp)
    try:
        await client.auth_plain(A, PASSWORD)
        await client.mail(A)
        assert (await client.rcpt(B)).code == 250
        with pytest.raises(aiosmtplib.SMTPRecipientRefused) as err:
            await client.rcpt("nobody@moh.gov.example")
        assert err.value.code == 550 and "5.1.1" in err.value.message
        with pytest.raises(aiosmtplib.SMTPRecipientRefused) as err:
            await client.rcpt("someone@elsewhere.example")
        assert err.value.code == 550 and "5.1.1" in err.value.message
        with pytest.raises(aiosmtplib.SMTPRecipientRefused) as err:
            await client.rcpt("c@moh.gov.example")  # suspended
        assert err.value.code == 550 and err.value.message.startswith("5.2.1")
    finally:
        client.close()


async def session_after_auth(smtp: Running) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", smtp.smtps, ssl=smtp.client_tls)
    await read_reply(reader)
    await command(reader, writer, b"EHLO client.test")
    assert (await command(reader, writer, b"AUTH PLAIN " + plain(A, PASSWORD))).startswith(b"235")
    return reader, writer


@pytest.mark.parametrize(
    ("wire", "expected"),
    [
        (b"Subject: x\r\n\r\nline\r\n.\r\n", b"Subject: x\r\n\r\nline\r\n"),
        (b"a\r\n..leading dot\r\n...\r\n.\r\n", b"a\r\n.leading dot\r\n..\r\n"),
        (b".\r\n", b""),
        (b"..\r\n.\r\n", b".\r\n"),
        # smuggling shapes are data, not an end of DATA; they reach the checks verbatim
        (b"a\n.\nMAIL FROM:<x@y>\r\n.\r\n", b"a\n.\nMAIL FROM:<x@y>\r\n"),
        (b"a\r.\rb\r\n.\r\n", b"a\r.\rb\r\n"),
        (b"a\n.\r\nb\r\n.\r\n", b"a\n.\r\nb\r\n"),
        (b"a\r\n.\nb\r\n.\r\n", b"a\r\n\nb\r\n"),  # a line starting "." loses it
        (b"a\r.\r\nb\r\n.\r\n", b"a\r.\r\nb\r\n"),
        (b"a\r\n.\rb\r\n.\r\n", b"a\r\n\rb\r\n"),
        (b"a\r\n.\x00\r\nb\r\n.\r\n", b"a\r\n\x00\r\nb\r\n"),
    ],
)
async def test_data_is_read_exactly(smtp: Running, wire: bytes, expected: bytes) -> None:
    reader, writer = await session_after_auth(smtp)
    await command(reader, writer, b"MAIL FROM:<a@moh.gov.example>")
    await command(reader, writer, b"RCPT TO:<b@moh.gov.example>")
    assert (await command(reader, writer, b"DATA")).startswith(b"354")
    writer.write(wire)
    await writer.drain()
    assert (await read_reply(reader)).startswith(b"250")
    assert smtp.pipeline.calls[-1][2] == expected
    # the session goes on after DATA
    assert (await command(reader, writer, b"NOOP")).startswith(b"250")
    writer.close()


async def test_oversized_message_gets_552_and_the_session_continues(gateway_config) -> None:  # type: ignore[no-untyped-def]
    running, stop = await start(gateway_config, max_size=2000)
    try:
        reader, writer = await session_after_auth(running)
        await command(reader, writer, b"MAIL FROM:<a@moh.gov.example>")
        await command(reader, writer, b"RCPT TO:<b@moh.gov.example>")
        await command(reader, writer, b"DATA")
        writer.write(b"x" * 998 + b"\r\n" * 1 + (b"y" * 500 + b"\r\n") * 20 + b".\r\nNOOP\r\n")
        await writer.drain()
        assert (await read_reply(reader)).startswith(b"552 5.3.4")
        assert (await read_reply(reader)).startswith(b"250")  # the pipelined NOOP
        assert running.pipeline.calls == []
        writer.close()
    finally:
        await stop()


async def test_internal_errors_give_451_without_details(smtp: Running) -> None:
    smtp.pipeline.fail = True
    reader, writer = await session_after_auth(smtp)
    await command(reader, writer, b"MAIL FROM:<a@moh.gov.example>")
    await command(reader, writer, b"RCPT TO:<b@moh.gov.example>")
    await command(reader, writer, b"DATA")
    writer.write(MESSAGE + b".\r\n")
    await writer.drain()
    line = await read_reply(reader)
    assert line.startswith(b"451 4.3.0") and b"secret" not in line and b"RuntimeError" not in line
    writer.close()


async def test_noop_flood_is_cut_off(smtp: Running) -> None:
    reader, writer = await raw_session(smtp.submission)
    replies = [await command(reader, writer, b"NOOP") for _ in range(21)]
    assert all(r.startswith(b"250") for r in replies[:20])
    assert replies[20].startswith(b"421 4.7.0")
    writer.close()


async def test_connection_limit(gateway_config) -> None:  # type: ignore[no-untyped-def]
    running, stop = await start(gateway_config, max_connections=2)
    try:
        first = await raw_session(running.submission)
        second = await raw_session(running.submission)
        reader, writer = await asyncio.open_connection("127.0.0.1", running.submission)
        assert (await reader.readline()).startswith(b"421 4.7.0")
        writer.close()
        for _, w in (first, second):
            w.close()
        await asyncio.sleep(0.1)
        third = await raw_session(running.submission)  # a slot is free again
        third[1].close()
    finally:
        await stop()


async def test_tls_handshake_failure_on_smtps_is_harmless(smtp: Running) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", smtp.smtps)
    writer.write(b"EHLO plain-text-on-a-tls-port\r\n")
    await writer.drain()
    assert await reader.read(100) == b""  # closed by the TLS layer
    writer.close()
    # the listener still serves
    reader2, writer2 = await asyncio.open_connection("127.0.0.1", smtp.smtps, ssl=smtp.client_tls)
    assert (await read_reply(reader2)).startswith(b"220")
    writer2.close()
    assert isinstance(smtp.client_tls, ssl.SSLContext)


async def test_parallel_failed_logins_are_throttled_too(smtp: Running) -> None:
    """Attempts that run at the same time count before their check finishes."""

    async def attempt(n: int) -> int:
        reader, writer = await asyncio.open_connection("127.0.0.1", smtp.smtps, ssl=smtp.client_tls)
        try:
            await read_reply(reader)
            await command(reader, writer, b"EHLO client.test")
            reply = await command(reader, writer, b"AUTH PLAIN " + plain(A, f"wrong password {n}"))
            return int(reply[:3])
        finally:
            writer.close()

    codes = await asyncio.gather(*(attempt(n) for n in range(12)))
    assert codes.count(535) <= 5 and codes.count(454) >= 7, codes


async def test_overlong_auth_response_is_refused_cleanly(smtp: Running) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", smtp.smtps, ssl=smtp.client_tls)
    await read_reply(reader)
    await command(reader, writer, b"EHLO client.test")
    assert (await command(reader, writer, b"AUTH LOGIN")).startswith(b"334")
    reply = await command(reader, writer, base64.b64encode(b"x" * 3000))
    assert reply.startswith(b"500 5.5.6"), reply
    assert (await command(reader, writer, b"NOOP")).startswith(b"250")
    writer.close()


async def test_many_parallel_sessions_of_one_employee_all_log_in(smtp: Running) -> None:
    """Serialising checks per account must not refuse a client's parallel sessions."""

    async def login() -> int:
        reader, writer = await asyncio.open_connection("127.0.0.1", smtp.smtps, ssl=smtp.client_tls)
        try:
            await read_reply(reader)
            await command(reader, writer, b"EHLO client.test")
            return int((await command(reader, writer, b"AUTH PLAIN " + plain(A, PASSWORD)))[:3])
        finally:
            writer.close()

    assert await asyncio.gather(*(login() for _ in range(12))) == [235] * 12


async def test_size_limit_counts_the_message_without_transparency_dots(gateway_config) -> None:  # type: ignore[no-untyped-def]
    running, stop = await start(gateway_config, max_size=2000)
    try:
        reader, writer = await session_after_auth(running)
        for lines, expected in ((450, b"250"), (530, b"552 5.3.4")):
            await command(reader, writer, b"MAIL FROM:<a@moh.gov.example>")
            await command(reader, writer, b"RCPT TO:<b@moh.gov.example>")
            await command(reader, writer, b"DATA")
            # each line is "..x" on the wire (5 octets) and ".x" in the message (4 octets)
            writer.write(b"..x\r\n" * lines + b".\r\n")
            await writer.drain()
            assert (await read_reply(reader)).startswith(expected), lines
        assert running.pipeline.calls[-1][2] == b".x\r\n" * 450
        writer.close()
    finally:
        await stop()


async def test_a_slow_large_message_is_not_an_idle_session(gateway_config) -> None:  # type: ignore[no-untyped-def]
    running, stop = await start(gateway_config, idle_timeout=1.0)
    try:
        reader, writer = await session_after_auth(running)
        await command(reader, writer, b"MAIL FROM:<a@moh.gov.example>")
        await command(reader, writer, b"RCPT TO:<b@moh.gov.example>")
        await command(reader, writer, b"DATA")
        for _ in range(8):  # 2.4 s of trickling data, well past the 1 s idle timer
            writer.write(b"x" * 100 + b"\r\n")
            await writer.drain()
            await asyncio.sleep(0.3)
        writer.write(b".\r\n")
        await writer.drain()
        assert (await read_reply(reader)).startswith(b"250")
        writer.close()
    finally:
        await stop()

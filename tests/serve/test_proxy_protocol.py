"""PROXY protocol v1 and v2 (gateway/serve/proxy_header.py, proxy_listener.py): the
parser on its own, then a whole gateway trusting 127.0.0.1 over real sockets:
SMTP, IMAP (STARTTLS and implicit TLS) and HTTP see the header's client address
(the login throttle and the verification radar count it); from an untrusted
address (127.0.0.2) a header is never parsed but treated as data; a malformed or
slow header from the proxy closes the connection."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ipaddress
import socket
import ssl
import struct
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gateway.config import Settings
from gateway.serve import listeners
from gateway.serve.proxy_header import (
    V2_SIGNATURE,
    ProxyHeader,
    ProxyHeaderError,
    parse,
)
from gateway.serve.proxy_listener import ProxyRules, accept_through
from testkit.imap_hostile import MOF, Raw, Running, gateway_with

CLIENT4, CLIENT6 = "203.0.113.9", "2001:db8::7"
UNTRUSTED = "127.0.0.2"


def v1(source: str = CLIENT4, port: int = 40001) -> bytes:
    family = "TCP6" if ":" in source else "TCP4"
    dest = "::1" if ":" in source else "127.0.0.1"
    return f"PROXY {family} {source} {dest} {port} 25\r\n".encode()


def v2(source: str = CLIENT4, port: int = 40002, command: int = 1) -> bytes:
    address = ipaddress.ip_address(source)
    if address.version == 4:
        body = address.packed + bytes(4) + struct.pack("!HH", port, 25)
        family = 0x11
    else:
        body = address.packed + bytes(16) + struct.pack("!HH", port, 25)
        family = 0x21
    return V2_SIGNATURE + bytes([0x20 | command, family]) + struct.pack("!H", len(body)) + body


# ---------------------------------------------------------------- the parser


def test_v1_and_v2_headers_parse_to_the_client_address() -> None:
    assert parse(v1() + b"EHLO x\r\n") == ProxyHeader(len(v1()), (CLIENT4, 40001), 1)
    assert parse(v1(CLIENT6)) == ProxyHeader(len(v1(CLIENT6)), (CLIENT6, 40001), 1)
    assert parse(b"PROXY UNKNOWN\r\n") == ProxyHeader(15, None, 1)
    assert parse(v2() + b"data") == ProxyHeader(28, (CLIENT4, 40002), 2)
    assert parse(v2(CLIENT6)) == ProxyHeader(52, (CLIENT6, 40002), 2)
    local = V2_SIGNATURE + b"\x20\x00\x00\x00"  # LOCAL: the balancer's health check
    assert parse(local) == ProxyHeader(16, None, 2)
    unspec = V2_SIGNATURE + b"\x21\x00\x00\x04abcd"  # PROXY, family UNSPEC, a TLV-ish body
    assert parse(unspec) == ProxyHeader(20, None, 2)
    for partial in (b"PRO", v1()[:20], V2_SIGNATURE[:5], v2()[:20]):
        assert parse(partial) is None  # more bytes needed


@pytest.mark.parametrize(
    "data",
    [
        b"EHLO x\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",
        b"PROXY TCP4 1.2.3.999 5.6.7.8 1 2\r\n",
        b"PROXY TCP4 ::1 ::1 1 2\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",
        b"PROXY " + b"X" * 120,
        b"PROXY TCP4 \xff.2.3.4 5.6.7.8 1 2\r\n",
        V2_SIGNATURE + b"\x31\x11\x00\x0c" + bytes(12),  # version 3
        V2_SIGNATURE + b"\x22\x11\x00\x0c" + bytes(12),  # command 2
        V2_SIGNATURE + b"\x21\x11\x00\x04" + bytes(4),  # IPv4 body too short
        V2_SIGNATURE + b"\x21\x11\xff\xff",  # longer than we accept
    ],
)
def test_malformed_headers_are_refused_without_quoting_them(data: bytes) -> None:
    with pytest.raises(ProxyHeaderError) as caught:
        parse(data)
    assert "1.2.3" not in str(caught.value) and "XXX" not in str(caught.value)


# ---------------------------------------------------------------- a gateway behind a proxy


@pytest.fixture
async def behind(
    demo_template: Path, tmp_path: Path, credentials: dict[str, dict[str, Any]]
) -> AsyncIterator[Running]:
    overrides = {
        "BARID_SERVER__TRUSTED_PROXIES": "127.0.0.1/32",
        "BARID_SERVER__PROXY_HEADER_TIMEOUT_SECONDS": "0.5",
    }
    async with gateway_with(demo_template, tmp_path / "d", credentials, overrides) as live:
        yield live


async def connect(port: int, header: bytes, source: str = "127.0.0.1") -> Raw:
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0)), 10
    )
    writer.write(header)
    return Raw(reader, writer)


async def address_failures(live: Running, address: str) -> int:
    assert live.gateway.authenticator is not None
    counters = live.gateway.authenticator.throttle.counters
    return (await counters.recent(["c:" + address], time.time()))[0]


async def smtp_auth_fails(live: Running, header: bytes) -> bytes:
    conn = await connect(live.gateway.smtp_ports["submission"], header)
    try:
        assert (await conn.line()).startswith(b"220 ")
        await smtp_command(conn, b"EHLO client.example")
        assert (await smtp_command(conn, b"STARTTLS")).startswith(b"220")
        await conn.writer.start_tls(live.tls)
        await smtp_command(conn, b"EHLO client.example")
        plain = base64.b64encode(f"\0{MOF}\0wrong password".encode())
        return await smtp_command(conn, b"AUTH PLAIN " + plain)
    finally:
        await conn.close()


async def smtp_command(conn: Raw, line: bytes) -> bytes:
    await conn.send(line + b"\r\n")
    while True:
        reply = await conn.line()
        if reply[3:4] != b"-":
            return reply


async def test_smtp_and_imap_see_the_address_in_the_header(behind: Running) -> None:
    assert (await smtp_auth_fails(behind, v1())).startswith(b"535")
    assert await address_failures(behind, CLIENT4) == 1
    # IMAP with STARTTLS behind a v2 header, from an IPv6 client.
    conn = await connect(behind.imap_port, v2(CLIENT6))
    await conn.greeting()
    await conn.starttls(behind.tls)
    assert (await conn.login(MOF, "wrong password")).startswith(b"L1 NO")
    await conn.close()
    assert await address_failures(behind, CLIENT6) == 1
    # IMAPS: the header comes before the TLS handshake.
    conn = await connect(behind.imaps_port, v1())
    await conn.writer.start_tls(behind.tls)
    await conn.greeting()
    assert (await conn.login(MOF, "wrong password")).startswith(b"L1 NO")
    await conn.close()
    assert await address_failures(behind, CLIENT4) == 2
    assert await address_failures(behind, "127.0.0.1") == 0


async def test_http_sees_the_address_in_the_header(behind: Running) -> None:
    radar = behind.gateway._http.config.app.state.verify_radar  # type: ignore[union-attr]
    request = b"GET /api/v1/verify/not-a-token HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    for header in (v1(), v2()):
        conn = await connect(behind.gateway.http_port, header + request)
        status = await conn.line()
        await conn.close()
        assert status.startswith(b"HTTP/1.1 200"), status
    window = radar.limits.failure_window
    assert await radar.windows.current("fail", CLIENT4, time.time(), window) == 2
    assert await radar.windows.current("fail", "127.0.0.1", time.time(), window) == 0


async def test_a_header_from_an_untrusted_address_is_data(behind: Running) -> None:
    conn = await connect(behind.imap_port, b"", source=UNTRUSTED)
    await conn.greeting()
    done = await conn.command(b"PROXY", v1()[len(b"PROXY ") : -2])
    assert done[1].startswith(b"PROXY BAD"), done
    await conn.close()
    conn = await connect(behind.gateway.smtp_ports["submission"], b"", source=UNTRUSTED)
    assert (await conn.line()).startswith(b"220 ")
    assert (await smtp_command(conn, v1()[:-2])).startswith(b"500")
    await conn.close()
    assert await address_failures(behind, CLIENT4) == 0


async def closed_without_a_word(conn: Raw) -> float:
    """Seconds until the server closed (a reset: it closed with our bytes unread)."""
    started = time.monotonic()
    with contextlib.suppress(ConnectionResetError):
        assert await asyncio.wait_for(conn.reader.read(), 10) == b""
    with contextlib.suppress(ConnectionError):
        await conn.close()
    return time.monotonic() - started


async def test_a_malformed_or_slow_header_closes_the_connection(
    behind: Running, caplog: pytest.LogCaptureFixture
) -> None:
    bad = await connect(behind.imap_port, b"a1 LOGIN someone secret\r\n")
    assert await closed_without_a_word(bad) < 0.4
    slow = await connect(behind.gateway.smtp_ports["submission"], v1()[:10])
    assert 0.4 < await closed_without_a_word(slow) < 5
    silent = await connect(behind.gateway.http_port, b"")
    assert await closed_without_a_word(silent) > 0.4
    refused = [r for r in caplog.records if r.getMessage() == "PROXY header refused"]
    assert [getattr(r, "reason", "") for r in refused][:2] == [
        "no PROXY protocol header",
        "timed out",
    ]
    assert all("secret" not in str(r.__dict__) for r in refused)
    # The listeners still serve.
    assert (await smtp_auth_fails(behind, v2())).startswith(b"535")


def test_trusted_proxies_are_checked_in_the_configuration() -> None:
    with pytest.raises(ValueError):
        Settings.model_validate({"server": {"trusted_proxies": ["10.0.0.0/8", "nonsense"]}})
    rules = ProxyRules.parse(["10.0.0.0/8", "::1"], 5.0)
    assert rules.trusts("10.1.2.3") and rules.trusts("::ffff:10.0.0.1") and rules.trusts("::1")
    assert not rules.trusts("11.0.0.1") and not rules.trusts("unknown")


def test_no_trusted_proxies_leave_the_socket_alone() -> None:
    sock = socket.socket()
    try:
        assert accept_through(sock, ProxyRules(()), "x") is sock
        assert accept_through(sock, None, "x") is sock
    finally:
        sock.close()


async def echo_client(scope: Any, receive: Any, send: Any) -> None:
    """An ASGI app answering with the client address it was given."""
    body = str(scope["client"][0]).encode()
    length = [(b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": length})
    await send({"type": "http.response.body", "body": body})


async def test_the_admin_listener_reads_the_header_before_tls(behind: Running) -> None:
    server, task, port = await listeners.start_admin_listener(behind.gateway.settings, echo_client)
    try:
        request = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        conn = await connect(port, v2(CLIENT6))
        await conn.writer.start_tls(behind.tls)
        await conn.send(request)
        answer = await asyncio.wait_for(conn.reader.read(), 10)
        assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(CLIENT6.encode())
        with contextlib.suppress(ssl.SSLError, ConnectionError):
            await conn.close()
        # From an untrusted address the listener is plain HTTPS with its own peer.
        conn = await connect(port, b"", source=UNTRUSTED)
        await conn.writer.start_tls(behind.tls)
        await conn.send(request)
        answer = await asyncio.wait_for(conn.reader.read(), 10)
        assert answer.endswith(UNTRUSTED.encode())
        with contextlib.suppress(ssl.SSLError, ConnectionError):
            await conn.close()
        # A header from there is data: HTTP answers 400.
        conn = await connect(behind.gateway.http_port, v1() + request, source=UNTRUSTED)
        assert (await conn.line()).startswith(b"HTTP/1.1 400")
        await conn.close()
    finally:
        server.should_exit = True
        await task

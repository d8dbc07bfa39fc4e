"""Hostile load on the IMAP listeners (gateway/imap/server.py, connection.py): fair
connection slots per client address, the minimum transfer rate and command
deadline, TLS handshake timeouts, the shared literal budget, literal storms, and
the graceful stop. Real sockets against a whole gateway; a second client address
is another loopback address (127.0.0.2, ...), as the server sees it."""

from __future__ import annotations

import asyncio
import re
import socket
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.imap.server import MAX_PREAUTH_LITERALS
from testkit.imap_hostile import (
    MOH,
    Conns,
    Raw,
    Running,
    assert_healthy,
    assert_no_server_errors,
    gateway_with,
    message,
)

ATTACKER, OTHER, THIRD, FOURTH = "127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"


@pytest.fixture(autouse=True)
def _no_server_errors(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    yield
    assert_no_server_errors(caplog)


def gateway(request: pytest.FixtureRequest, overrides: dict[str, str]) -> Any:
    demo_template: Path = request.getfixturevalue("demo_template")
    tmp_path: Path = request.getfixturevalue("tmp_path")
    credentials: dict[str, dict[str, Any]] = request.getfixturevalue("credentials")
    return gateway_with(demo_template, tmp_path / "d", credentials, overrides)


@pytest.fixture
async def small(request: pytest.FixtureRequest) -> AsyncIterator[Running]:
    """Ten slots, three per address, two per busy address when slots are short."""
    overrides = {"BARID_IMAP__MAX_CONNECTIONS": "10", "BARID_IMAP__MAX_CONNECTIONS_PER_ADDRESS": "6",
                 "BARID_IMAP__BUSY_PER_ADDRESS": "2"}  # fmt: skip
    async with gateway(request, overrides) as running:
        yield running


@pytest.fixture
async def strict(request: pytest.FixtureRequest) -> AsyncIterator[Running]:
    """Slow clients are cut quickly: 100 octets/s over 1 s windows, commands within 3 s,
    TLS handshakes within 1 s."""
    overrides = {"BARID_IMAP__MIN_TRANSFER_RATE": "100", "BARID_IMAP__TRANSFER_WINDOW_SECONDS": "1",
                 "BARID_IMAP__COMMAND_TIMEOUT_SECONDS": "3", "BARID_IMAP__TLS_HANDSHAKE_SECONDS": "1"}  # fmt: skip
    async with gateway(request, overrides) as running:
        yield running


@pytest.fixture
async def budgeted(request: pytest.FixtureRequest) -> AsyncIterator[Running]:
    """The literal budget is two APPENDLIMITs of 64 KiB (default rates)."""
    overrides = {"BARID_IMAP__MAX_APPEND_SIZE": "65536",
                 "BARID_IMAP__APPEND_MEMORY_BUDGET": str(2 * 65536)}  # fmt: skip
    async with gateway(request, overrides) as running:
        yield running


async def refused_at_once(conn: Raw) -> None:
    rest = await conn.closed()
    assert len(rest) == 1 and rest[0].startswith(b"* BYE [UNAVAILABLE]"), rest


async def read_one_message(conns: Conns, live: Running, source: str | None = None) -> None:
    """Log in as MOH, store a message, and read its body back."""
    conn = await conns.logged_in(live, MOH, source=source)
    raw = message(800, "fairness")
    await conn.send(b"ap APPEND INBOX {%d+}\r\n" % len(raw) + raw + b"\r\n")
    assert (await conn.until_tagged(b"ap"))[1].startswith(b"ap OK")
    untagged = await conn.ok(b"se", b"SELECT INBOX")
    count = next(int(u.split()[1]) for u in untagged if u.endswith(b" EXISTS\r\n"))
    fetched = await conn.ok(b"fe", b"FETCH %d BODY.PEEK[]" % count)
    assert fetched and fetched[0].startswith(b"* %d FETCH" % count), fetched
    await conn.ok(b"lo", b"LOGOUT")


# ---- fair slots ------------------------------------------------------------------------


async def test_one_address_at_its_cap_does_not_stop_another(small: Running, conns: Conns) -> None:
    live = small
    held = [await conns.greeted(live.imap_port, source=ATTACKER) for _ in range(5)]
    held.append(await conns.greeted(live.imaps_port, live.tls, source=ATTACKER))
    for conn in held:  # half-typed commands, as the red team left them
        await conn.send(b"a1 LOG")
    for port, tls in ((live.imap_port, None), (live.imaps_port, live.tls)):
        await refused_at_once(await conns.raw(port, tls, source=ATTACKER))

    # Another address logs in and reads, on either port.
    await read_one_message(conns, live)
    conn = await conns.logged_in(live, MOH, implicit=True, source=OTHER)
    await conn.ok(b"x", b"SELECT INBOX")
    assert live.gateway.imap is not None
    assert live.gateway.imap.slots.held(ATTACKER) == 6


async def test_when_slots_are_short_busy_addresses_are_refused_first(
    small: Running, conns: Conns
) -> None:
    live = small
    for source, count in ((ATTACKER, 6), (OTHER, 2), (THIRD, 1)):
        for _ in range(count):
            await conns.greeted(live.imap_port, source=source)
    # Nine of ten slots taken: an address holding two (busy) gets no more ...
    await refused_at_once(await conns.raw(live.imap_port, source=OTHER))
    # ... while an address holding fewer still gets in, and reads its mail.
    await read_one_message(conns, live, source=THIRD)
    mine = await conns.greeted(live.imap_port, source=FOURTH)
    # All ten taken: everyone is refused, and the listener still serves afterwards.
    await refused_at_once(await conns.raw(live.imap_port, source="127.0.0.6"))
    await mine.close()
    await assert_healthy(live)


# ---- slow clients ----------------------------------------------------------------------


async def test_trickled_literal_is_cut_at_the_minimum_rate(strict: Running, conns: Conns) -> None:
    live = strict
    check = await conns.logged_in(live, MOH)
    before = await check.messages(b"INBOX")

    trickle = await conns.logged_in(live, MOH)
    await trickle.send(b"t1 APPEND INBOX {5000+}\r\n" + b"x" * 10)
    started = time.monotonic()
    rest = await trickle.closed()  # 10 octets in a 1 s window, 100 needed
    assert rest and rest[0].startswith(b"* BYE [LIMIT]"), rest
    assert time.monotonic() - started < 4.5

    # Fast enough per window, but the command as a whole outlives its deadline (3 s).
    steady = await conns.logged_in(live, MOH)
    await steady.send(b"t2 APPEND INBOX {60000+}\r\n")
    lines: list[bytes] = []
    for _ in range(10):
        try:
            await steady.send(b"y" * 150)
        except ConnectionError:
            break
        await asyncio.sleep(0.5)
        if steady.reader.at_eof() or steady.reader._buffer:  # type: ignore[attr-defined]
            break
    lines = await steady.closed()
    assert lines and lines[0].startswith(b"* BYE [LIMIT]"), lines

    assert await check.messages(b"INBOX") == before  # nothing stored
    await assert_healthy(live)


async def test_tls_handshake_must_end_in_time(strict: Running, conns: Conns) -> None:
    live = strict
    silent = await conns.raw(live.imaps_port)  # no ClientHello at all
    started = time.monotonic()
    assert not [r for r in await silent.closed() if r.startswith(b"*")]
    assert time.monotonic() - started < 4.5

    starttls = await conns.greeted(live.imap_port)
    await starttls.ok(b"s1", b"STARTTLS")  # and then no handshake
    assert await starttls.closed() == []
    await assert_healthy(live)


# ---- the literal budget ----------------------------------------------------------------


async def test_over_the_literal_budget_append_gets_no_limit_and_nothing_else_degrades(
    budgeted: Running, conns: Conns
) -> None:
    live = budgeted
    assert live.gateway.imap is not None
    budget = live.gateway.imap.budget
    reader = await conns.logged_in(live, MOH)
    before = await reader.messages(b"INBOX")

    # Two sessions each have a 64 KiB APPEND on its way: the 128 KiB budget is spent.
    big = message(65536, "held")
    holders = []
    for tag in (b"h1", b"h2"):
        holder = await conns.logged_in(live, MOH)
        await holder.send(tag + b" APPEND INBOX {65536+}\r\n" + big[:30000])
        holders.append((tag, holder))
    for _ in range(100):
        if budget.used == 2 * 65536:
            break
        await asyncio.sleep(0.02)
    assert budget.used == 2 * 65536

    late = await conns.logged_in(live, MOH)
    small = message(2000, "late")
    # A synchronizing literal is refused before its "+"; RFC 5530 [LIMIT], try again later.
    done = await late.with_literal(b"l1", b"APPEND INBOX ", small, b"")
    assert done.startswith(b"l1 NO [LIMIT]"), done
    # A non-synchronizing one is read, dropped and refused; the session goes on.
    await late.send(b"l2 APPEND INBOX {%d+}\r\n" % len(small) + small + b"\r\n")
    untagged, done = await late.until_tagged(b"l2")
    assert done.startswith(b"l2 NO [LIMIT]") and untagged == [], (untagged, done)
    # Everything else works: reading, searching, other sessions.
    await late.ok(b"l3", b"SELECT INBOX")
    await late.ok(b"l4", b"SEARCH ALL")
    await read_one_message_no_append(reader)

    # The held APPENDs finish; the budget comes back and APPEND works again.
    for tag, holder in holders:
        await holder.send(big[30000:] + b"\r\n")
        assert (await holder.until_tagged(tag))[1].startswith(tag + b" OK")
    await late.send(b"l5 APPEND INBOX {%d}\r\n" % len(small))
    assert (await late.line()).startswith(b"+")
    await late.send(small + b"\r\n")
    assert (await late.until_tagged(b"l5"))[1].startswith(b"l5 OK")
    assert await reader.messages(b"INBOX") == before + 3
    await late.ok(b"l6", b"NOOP")
    assert budget.used == 0


async def read_one_message_no_append(conn: Raw) -> None:
    untagged = await conn.ok(b"rs", b"SELECT INBOX")
    count = next(int(u.split()[1]) for u in untagged if u.endswith(b" EXISTS\r\n"))
    if count:
        fetched = await conn.ok(b"rf", b"FETCH 1 BODY.PEEK[HEADER]")
        assert fetched and fetched[0].startswith(b"* 1 FETCH"), fetched


# ---- literal storms --------------------------------------------------------------------


async def test_login_literal_storm_is_refused_in_well_under_a_second_of_cpu(
    strict: Running, conns: Conns
) -> None:
    """`a1 LOGIN` and 20,000 one-octet literals (160 KB) before login."""
    live = strict
    storm = b"a1 LOGIN" + b" {1+}\r\nx" * 20_000 + b"\r\n"
    conn = await conns.greeted(live.imap_port)
    cpu = time.process_time()  # the gateway runs in this process (the client's share is tiny)
    await conn.send_hostile(storm)
    rest = await conn.closed()
    spent = time.process_time() - cpu
    assert rest and rest[0].startswith(b"* BYE [LIMIT]"), rest
    assert spent < 0.5, f"{spent:.3f} s of CPU"

    # Synchronizing literals: refused before a "+" once the count is reached.
    sync = await conns.greeted(live.imap_port)
    await sync.send(b"b1 LOGIN {1}\r\n")
    for _ in range(MAX_PREAUTH_LITERALS - 1):
        assert (await sync.line()).startswith(b"+")
        await sync.send(b"x {1}\r\n")
    assert (await sync.line()).startswith(b"+")
    await sync.send(b"x {1}\r\n")
    answer = await sync.line()
    assert answer.startswith(b"b1 NO [LIMIT]"), answer
    await sync.ok(b"b2", b"NOOP")
    await assert_healthy(live)


async def test_a_thousand_literals_after_login_parse_in_well_under_a_second_of_cpu(
    strict: Running, conns: Conns
) -> None:
    live = strict
    conn = await conns.logged_in(live, MOH)
    await conn.ok(b"s0", b"SELECT INBOX")
    keys = b" ".join([b"TEXT {1+}\r\nx"] * 1000)
    cpu = time.process_time()
    await conn.send(b"s1 SEARCH " + keys + b" ALL\r\n")
    _, done = await conn.until_tagged(b"s1")
    spent = time.process_time() - cpu
    assert re.match(rb"s1 (OK|BAD|NO)", done), done
    assert spent < 1.0, f"{spent:.3f} s of CPU"
    # One more literal than allowed: the connection ends (the literal cannot be skipped).
    await conn.send_hostile(b"s2 SEARCH " + b"TEXT {1+}\r\nx " * 1001 + b"ALL\r\n")
    rest = await conn.closed()
    assert rest and rest[0].startswith(b"* BYE [LIMIT]"), rest
    await assert_healthy(live)


@pytest.mark.parametrize("login", [False, True], ids=["before-login", "after-login"])
async def test_parser_failures_are_refused_not_a_server_bug(
    strict: Running, conns: Conns, login: bool
) -> None:
    """pymap's parser recurses once per OR: thousands of them exhausted Python's stack
    (a RecursionError, answered BYE [SERVERBUG] with a traceback in the log)."""
    live = strict
    if login:
        conn = await conns.logged_in(live, MOH)
        await conn.ok(b"o0", b"SELECT INBOX")
    else:
        conn = await conns.greeted(live.imap_port)
    await conn.refused(b"o1", b"SEARCH " + b"OR TEXT x " * 3000 + b"ALL ALL")
    await conn.ok(b"o2", b"NOOP")
    # 8-bit text without CHARSET: pymap's parser raised UnicodeDecodeError.
    await conn.send(b"o4 SEARCH TEXT {1+}\r\n\x80\r\n")
    _, done = await conn.until_tagged(b"o4")
    assert done.startswith(b"o4 BAD"), done
    if login:  # a chain clients really send still works
        await conn.ok(b"o3", b"SEARCH " + b"OR TEXT x " * 20 + b"ALL ALL")
    await assert_healthy(live)


# ---- graceful stop ---------------------------------------------------------------------

SHUTTING_DOWN = b"* BYE [UNAVAILABLE] Server shutting down."


async def test_graceful_stop_says_bye_to_every_session_and_finishes_commands(
    budgeted: Running, conns: Conns
) -> None:
    live = budgeted
    service = live.gateway.imap
    assert service is not None
    greeted = await conns.greeted(live.imap_port)
    idle = await conns.logged_in(live, MOH)
    idling = await conns.logged_in(live, MOH, implicit=True)
    await idling.ok(b"i0", b"SELECT INBOX")
    await idling.send(b"i1 IDLE\r\n")
    assert (await idling.line()).startswith(b"+")
    before = await idle.messages(b"INBOX")
    raw = message(20_000, "in flight at shutdown")
    finishing = await conns.logged_in(live, MOH)
    await finishing.send(b"f1 APPEND INBOX {%d+}\r\n" % len(raw) + raw[:5000])
    stuck = await conns.logged_in(live, MOH)
    await stuck.send(b"s1 APPEND INBOX {%d+}\r\n" % len(raw) + raw[:5000])
    await asyncio.sleep(0.2)  # both literals are being read

    stopping = asyncio.create_task(service.close_gracefully(3.0))
    # Sessions between commands (or in IDLE) hear at once; a new connection is refused.
    for conn in (greeted, idle, idling):
        rest = await conn.closed()
        assert rest and rest[-1].startswith(SHUTTING_DOWN), rest
    with pytest.raises(OSError):
        await Raw.open(live.imap_port)
    # A command on its way finishes and is answered, then BYE.
    await finishing.send(raw[5000:] + b"\r\n")
    lines = await finishing.closed()
    assert [line[:5] for line in lines] == [b"f1 OK", b"* BYE"], lines
    assert lines[-1].startswith(SHUTTING_DOWN)
    # One that does not finish within the grace period hears BYE when it ends.
    rest = await stuck.closed()
    assert rest == [SHUTTING_DOWN + b"\r\n"], rest
    await asyncio.wait_for(stopping, 5)
    assert service.budget.used == 0 and service.slots.open == 0

    # Exactly the finished APPEND was stored.
    stored = await mailbox_count(live, MOH)
    assert stored == before + 1


async def mailbox_count(live: Running, who: str) -> int:
    from sqlalchemy import func, select

    from gateway.store.models import Mailbox, MailboxMessage

    employee = await live.gateway.directory.active_employee_id(who)  # type: ignore[union-attr]
    async with live.gateway.sessions() as session:
        count = await session.scalar(
            select(func.count())
            .select_from(MailboxMessage)
            .join(Mailbox, MailboxMessage.mailbox_id == Mailbox.id)
            .where(Mailbox.employee_id == employee, Mailbox.name == "INBOX")
        )
    return int(count or 0)


async def test_a_client_that_stops_reading_is_cut_off(strict: Running, conns: Conns) -> None:
    """Replies must be read at the minimum rate too: a client that asks for a large
    body and reads nothing loses its slot within a window or two."""
    live = strict
    loader = await conns.logged_in(live, MOH)
    big = message(6 * 1024 * 1024, "large")
    await loader.send(b"ap APPEND INBOX {%d+}\r\n" % len(big) + big + b"\r\n")
    assert (await loader.until_tagged(b"ap"))[1].startswith(b"ap OK")
    untagged = await loader.ok(b"se", b"SELECT INBOX")
    count = next(int(u.split()[1]) for u in untagged if u.endswith(b" EXISTS\r\n"))

    lazy = await conns.logged_in(live, MOH)
    await lazy.ok(b"l0", b"SELECT INBOX")
    assert live.gateway.imap is not None
    held = live.gateway.imap.slots.open
    await lazy.send(b"l1 FETCH %d BODY.PEEK[]\r\n" % count)  # and never read the answer
    lazy.writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    lazy.writer.transport.pause_reading()
    for _ in range(100):
        if live.gateway.imap.slots.open < held:
            break
        await asyncio.sleep(0.1)
    assert live.gateway.imap.slots.open == held - 1  # cut off, its slot free again
    await assert_healthy(live)

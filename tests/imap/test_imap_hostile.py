"""Hostile IMAP clients against the whole gateway (gateway/imap/server.py's hardening
rules): login only over TLS, bounded literals, lines and nesting, no STARTTLS
command injection, login throttling without account enumeration, garbage, the
bad-command and connection limits, and mailbox names with control characters.

Every exchange is written byte by byte on raw asyncio streams, and every read is
bounded (testkit.imap_hostile.TIMEOUT). After each hostile exchange the test
shows it did no harm: the refused connection still works where the protocol
allows it, a fresh connection still gets STARTTLS, LOGIN and SELECT INBOX, and
the server logged no ERROR record (a client must not cause server-bug traces).
"""

from __future__ import annotations

import asyncio
import base64
import random
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.imap.server import MAX_BAD_COMMANDS, MAX_LINE, MAX_NESTING, MAX_PREAUTH_LITERAL
from testkit.imap_hostile import (
    FORMER,
    MOF,
    MOH,
    NOBODY,
    Conns,
    ImapTarget,
    Raw,
    Running,
    assert_healthy,
    assert_no_server_errors,
    assert_refused,
    capabilities_of,
    gateway_with,
    healthy_session,
    message,
    password,
    quoted,
)

APPEND_LIMIT = 65536


@pytest.fixture(autouse=True)
def _no_server_errors(
    request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture
) -> Iterator[None]:
    """No test here may make the server log an ERROR."""
    yield
    assert_no_server_errors(caplog)


@pytest.fixture
async def small_append(
    demo_template: Path, tmp_path: Path, credentials: dict[str, dict[str, Any]]
) -> AsyncIterator[Running]:
    """A gateway whose APPENDLIMIT is 64 KiB."""
    overrides = {"BARID_IMAP__MAX_APPEND_SIZE": str(APPEND_LIMIT)}
    async with gateway_with(demo_template, tmp_path / "d", credentials, overrides) as running:
        yield running


@pytest.fixture
async def three_connections(
    demo_template: Path, tmp_path: Path, credentials: dict[str, dict[str, Any]]
) -> AsyncIterator[Running]:
    """A gateway that serves at most three IMAP connections at once."""
    overrides = {"BARID_IMAP__MAX_CONNECTIONS": "3"}
    async with gateway_with(demo_template, tmp_path / "d", credentials, overrides) as running:
        yield running


def nested(depth: int, inner: bytes) -> bytes:
    return b"(" * depth + inner + b")" * depth


async def selected_with_one_message(conns: Conns, live: ImapTarget) -> Raw:
    """MOH logged in with INBOX selected, holding (at least) one message."""
    conn = await conns.logged_in(live, MOH)
    raw = message(600)
    await conn.send(b"ap APPEND INBOX {%d+}\r\n" % len(raw) + raw + b"\r\n")
    _, done = await conn.until_tagged(b"ap")
    assert done.startswith(b"ap OK"), done
    await conn.ok(b"se", b"SELECT INBOX")
    return conn


# ---- 1. login only over TLS ------------------------------------------------------------


async def test_starttls_port_offers_no_login_before_tls(live: ImapTarget, conns: Conns) -> None:
    conn = await conns.raw(live.imap_port)
    greeting = await conn.greeting()
    for caps in (capabilities_of(greeting), await conn.capability()):
        assert b"STARTTLS" in caps and b"LOGINDISABLED" in caps, caps
        assert not [c for c in caps if c.upper().startswith(b"AUTH=")], caps

    secret = password(live, MOH)
    done = await conn.login(MOH, secret, tag=b"a1")  # the right password, in clear text
    assert done.startswith(b"a1 NO"), done
    # No continuation: the server never asks for credentials in clear text.
    await conn.refused(b"a2", b"AUTHENTICATE PLAIN")
    initial = base64.b64encode(f"\0{MOH}\0{secret}".encode())
    await conn.refused(b"a3", b"AUTHENTICATE PLAIN " + initial)
    await conn.ok(b"a4", b"NOOP")

    await conn.starttls(live.tls)
    caps = await conn.capability()
    assert b"AUTH=PLAIN" in caps, caps
    assert b"LOGINDISABLED" not in caps and b"STARTTLS" not in caps, caps
    assert (await conn.login(MOH, secret)).startswith(b"L1 OK")
    await conn.ok(b"a5", b"SELECT INBOX")

    # AUTHENTICATE PLAIN works too once the connection is encrypted.
    other = await conns.greeted(live.imap_port)
    await other.starttls(live.tls)
    assert (await other.authenticate_plain(MOH, secret)).startswith(b"P1 OK")
    await assert_healthy(live)


async def test_implicit_tls_port_offers_login_at_once(live: ImapTarget, conns: Conns) -> None:
    conn = await conns.raw(live.imaps_port, live.tls)
    greeting = await conn.greeting()
    caps = capabilities_of(greeting)
    assert b"STARTTLS" not in caps and b"LOGINDISABLED" not in caps, caps
    assert b"AUTH=PLAIN" in caps, caps
    assert_refused(b"t1", (await conn.command(b"t1", b"STARTTLS"))[1])
    assert (await conn.login(MOH, password(live, MOH))).startswith(b"L1 OK")
    await conn.ok(b"t2", b"SELECT INBOX")
    await assert_healthy(live)


# ---- 2, 3. literals before login -------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "sent"),
    [(100_000, b""), (100_000, b"x" * 2000), (MAX_PREAUTH_LITERAL + 1, b"")],
    ids=["announced-only", "with-some-bytes", "one-over-the-limit"],
)
async def test_oversized_literal_plus_before_login_ends_connection(
    live: ImapTarget, conns: Conns, size: int, sent: bytes
) -> None:
    conn = await conns.greeted(live.imap_port)
    started = asyncio.get_running_loop().time()
    await conn.send_hostile(b"a LOGIN {%d+}\r\n" % size + sent)
    # The server never waits for the announced octets: BYE at once, then it closes.
    rest = await conn.closed()
    assert asyncio.get_running_loop().time() - started < 5
    assert rest and rest[0].startswith(b"* BYE [TOOBIG]"), rest
    assert not [r for r in rest if r.startswith(b"a ")], rest

    # At the limit the literal is read, and the command is answered normally.
    ok = await conns.greeted(live.imap_port)
    await ok.send(b"b LOGIN {%d+}\r\n" % MAX_PREAUTH_LITERAL + b"u" * MAX_PREAUTH_LITERAL)
    await ok.send(b' "secret"\r\n')
    assert_refused(b"b", (await ok.until_tagged(b"b"))[1])  # LOGIN before TLS: NO
    await ok.ok(b"c", b"NOOP")
    await assert_healthy(live)


async def test_oversized_sync_literal_before_login_gets_no_continuation(
    live: ImapTarget, conns: Conns
) -> None:
    conn = await conns.greeted(live.imap_port)
    await conn.refused(b"a", b"LOGIN {100000}")  # fails on a `+`
    await conn.refused(b"b", b"LOGIN {%d}" % (MAX_PREAUTH_LITERAL + 1))
    await conn.ok(b"c", b"NOOP")
    # A small synchronizing literal does get its `+` (so the checks above can fail).
    assert_refused(b"d", await conn.with_literal(b"d", b"LOGIN ", b"abcde", b' "x"'))
    await conn.ok(b"e", b"NOOP")
    await assert_healthy(live)


async def test_sync_append_literal_before_login_gets_no_continuation(
    live: ImapTarget, conns: Conns, caplog: pytest.LogCaptureFixture
) -> None:
    conn = await conns.greeted(live.imap_port)
    await conn.refused(b"a", b"APPEND INBOX {100000}")  # fails on the `+`
    await conn.ok(b"b", b"NOOP")
    await assert_healthy(live)
    assert_no_server_errors(caplog)


@pytest.mark.parametrize("form", ["literal-plus", "synchronizing"])
async def test_chained_literals_before_login_are_bounded(
    live: ImapTarget, conns: Conns, caplog: pytest.LogCaptureFixture, form: str
) -> None:
    chunk, rounds = b"x" * MAX_PREAUTH_LITERAL, 128  # 512 KiB in one command, before login
    conn = await conns.greeted(live.imap_port)
    if form == "literal-plus":
        announce = b"TEXT {%d+}\r\n" % len(chunk)
        await conn.send_hostile(b"a SEARCH " + announce)
        for _ in range(rounds):
            await conn.send_hostile(chunk + b" " + announce)
        await conn.send_hostile(chunk + b"\r\n")
        first = (await conn.until_tagged_or_closed(b"a"))[:1]
        assert first == [] or first[0].startswith(b"* BYE"), first
    else:
        announce = b"TEXT {%d}\r\n" % len(chunk)
        await conn.send(b"a SEARCH " + announce)
        refused = False
        for _ in range(rounds):
            try:
                got = await conn.line()
            except ConnectionError:
                got = b""
            if not got.startswith(b"+"):
                refused = True
                break
            await conn.send_hostile(chunk + b" " + announce)
        assert refused, f"{rounds} chained literals of {len(chunk)} octets accepted before login"
    await assert_healthy(live)
    assert_no_server_errors(caplog)


# ---- 4. APPEND over the APPENDLIMIT ----------------------------------------------------


async def test_append_over_appendlimit_is_refused_and_stores_nothing(
    small_append: Running, conns: Conns
) -> None:
    live = small_append
    conn = await conns.logged_in(live, MOH)
    assert b"APPENDLIMIT=%d" % APPEND_LIMIT in await conn.capability()
    before = await conn.messages(b"INBOX")

    # Synchronizing literals over the limit: refused before the `+`.
    await conn.refused(b"a1", b"APPEND INBOX {200000}")
    await conn.refused(b"a2", b"APPEND INBOX {%d}" % (APPEND_LIMIT + 1))
    # MULTIAPPEND whose second message is too big: the first is not stored either.
    first = message(1000)
    await conn.send(b"a3 APPEND INBOX {%d+}\r\n" % len(first) + first + b" {200000}\r\n")
    untagged, done = await conn.until_tagged(b"a3")
    assert_refused(b"a3", done)
    assert untagged == [], untagged
    await conn.ok(b"a4", b"NOOP")

    # At and under the limit APPEND works, with either kind of literal.
    at_limit = message(APPEND_LIMIT)
    await conn.send(b"a5 APPEND INBOX {%d+}\r\n" % APPEND_LIMIT + at_limit + b"\r\n")
    assert (await conn.until_tagged(b"a5"))[1].startswith(b"a5 OK")
    done = await conn.with_literal(b"a6", b"APPEND INBOX ", message(60_000), b"")
    assert done.startswith(b"a6 OK"), done

    # LITERAL+ over the limit: the literal cannot be skipped, so BYE and close.
    await conn.send_hostile(b"a7 APPEND INBOX {200000+}\r\n" + b"x" * 1000)
    rest = await conn.closed()
    assert rest and rest[0].startswith(b"* BYE [TOOBIG]"), rest
    assert not [r for r in rest if r.startswith(b"a7 ")], rest

    # Only the two APPENDs within the limit were stored.
    check = await conns.logged_in(live, MOH)
    assert await check.messages(b"INBOX") == before + 2
    await assert_healthy(live)


async def test_append_over_appendlimit_says_toobig(
    small_append: Running, conns: Conns, caplog: pytest.LogCaptureFixture
) -> None:
    conn = await conns.logged_in(small_append, MOH)
    done = await conn.refused(b"a1", b"APPEND INBOX {200000}")
    assert b"[TOOBIG]" in done, done
    assert_no_server_errors(caplog)


# ---- 5. nesting ------------------------------------------------------------------------


async def test_deep_nesting_is_refused_and_the_connection_goes_on(
    live: ImapTarget, conns: Conns
) -> None:
    conn = await selected_with_one_message(conns, live)

    await conn.refused(b"n1", b"SEARCH " + nested(5000, b"ALL"))
    await conn.ok(b"n2", b"NOOP")
    await conn.refused(b"n3", b"FETCH 1 (FLAGS " + nested(5000, b"UID") + b")")
    await conn.ok(b"n4", b"NOOP")
    await conn.refused(b"n5", b"UID SEARCH " + nested(MAX_NESTING + 1, b"ALL"))
    await conn.ok(b"n6", b"NOOP")

    # Moderate nesting, and parentheses inside strings, are not refused.
    for tag, depth in ((b"m1", 3), (b"m2", MAX_NESTING)):
        untagged = await conn.ok(tag, b"SEARCH " + nested(depth, b"ALL"))
        assert b"* SEARCH 1\r\n" in untagged, untagged
    await conn.ok(b"m3", b'SEARCH HEADER Subject "' + b"(" * 5000 + b'"')
    literal = b"(" * 4000
    await conn.send(b"m4 SEARCH HEADER Subject {%d+}\r\n" % len(literal) + literal + b"\r\n")
    assert (await conn.until_tagged(b"m4"))[1].startswith(b"m4 OK")
    untagged = await conn.ok(b"m5", b"FETCH 1 (FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert untagged and untagged[0].startswith(b"* 1 FETCH "), untagged
    await assert_healthy(live)


@pytest.mark.parametrize(
    ("where", "payload"),
    [
        pytest.param("idle", nested(30, b"DONE"), id="idle-nesting"),
        pytest.param("authenticate", nested(30, b"AAAA"), id="authenticate-nesting"),
        pytest.param("idle", b"x" * (MAX_LINE + 4000), id="idle-long-line"),
    ],
)
async def test_refusal_inside_a_continuation_is_not_a_server_bug(
    live: ImapTarget, conns: Conns, caplog: pytest.LogCaptureFixture, where: str, payload: bytes
) -> None:
    if where == "idle":
        conn = await conns.logged_in(live, MOH)
        await conn.ok(b"i0", b"SELECT INBOX")
        await conn.send(b"i1 IDLE\r\n")
    else:
        conn = await conns.greeted(live.imap_port)
        await conn.starttls(live.tls)
        await conn.send(b"i1 AUTHENTICATE PLAIN\r\n")
    assert (await conn.line()).startswith(b"+")
    await conn.send_hostile(payload + b"\r\n")
    lines = await conn.until_tagged_or_closed(b"i1")
    assert not [line for line in lines if b"SERVERBUG" in line], lines
    if lines and lines[-1].startswith(b"i1 "):
        assert_refused(b"i1", lines[-1])
        await conn.ok(b"i2", b"NOOP")
    else:
        assert lines and lines[0].startswith(b"* BYE"), lines
    await assert_healthy(live)
    assert_no_server_errors(caplog)


@pytest.mark.parametrize("key", [b"SUBJECT", b"FROM", b"SENTSINCE"])
async def test_search_by_envelope_field_is_not_a_server_bug(
    live: ImapTarget, conns: Conns, caplog: pytest.LogCaptureFixture, key: bytes
) -> None:
    conn = await selected_with_one_message(conns, live)
    value = b"1-Jan-2020" if key == b"SENTSINCE" else b'"hostile"'
    untagged = await conn.ok(b"s1", b"SEARCH " + key + b" " + value)
    assert untagged and untagged[0].startswith(b"* SEARCH"), untagged
    await assert_healthy(live)
    assert_no_server_errors(caplog)


# ---- 6. control characters in mailbox names --------------------------------------------

# Names sent as synchronizing literals: the parser takes any octet there.
LITERAL_NAMES = [b"ab\r\nc", b"a\x00b", b"a\nb", b"a\rb", b'x\r\n* LIST () "/" INBOX']
# Quoted names with a control character, raw or in modified UTF-7 (CR LF, NUL).
QUOTED_NAMES = [b'"a\x01b"', b'"a\tb"', b'"a\x7fb"', b'"x&AA0ACg-y"', b'"x&AAA-y"']


async def list_lines(conn: Raw, command: bytes) -> list[bytes]:
    untagged = await conn.ok(b"ls", command + b' "" "*"')
    assert all(line.startswith(b"* L") for line in untagged), untagged
    return sorted(untagged)


async def test_control_characters_in_mailbox_names_are_refused(
    live: ImapTarget, conns: Conns
) -> None:
    conn = await conns.logged_in(live, MOH)
    listed, subscribed = await list_lines(conn, b"LIST"), await list_lines(conn, b"LSUB")
    await conn.ok(b"c0", b"CREATE Legit")
    msg = message(300)

    for name in LITERAL_NAMES:
        assert_refused(b"c1", await conn.with_literal(b"c1", b"CREATE ", name, b""))
        assert_refused(b"c2", await conn.with_literal(b"c2", b"SELECT ", name, b""))
        assert_refused(b"c3", await conn.with_literal(b"c3", b"RENAME Legit ", name, b""))
        assert_refused(b"c4", await conn.with_literal(b"c4", b"RENAME ", name, b" Legit2"))
        append_tail = b" {%d+}\r\n" % len(msg) + msg
        assert_refused(b"c5", await conn.with_literal(b"c5", b"APPEND ", name, append_tail))
        assert_refused(b"c6", await conn.with_literal(b"c6", b"STATUS ", name, b" (MESSAGES)"))
    for name in QUOTED_NAMES:
        await conn.refused(b"q1", b"CREATE " + name)
        await conn.refused(b"q2", b"SELECT " + name)
        await conn.refused(b"q3", b"EXAMINE " + name)
        await conn.refused(b"q4", b"RENAME Legit " + name)
        await conn.refused(b"q5", b"RENAME " + name + b" Legit2")
        await conn.refused(b"q6", b"DELETE " + name)
        await conn.refused(b"q7", b"STATUS " + name + b" (MESSAGES)")
        await conn.send(b"q8 APPEND " + name + b" {%d+}\r\n" % len(msg) + msg + b"\r\n")
        untagged, done = await conn.until_tagged(b"q8")
        assert_refused(b"q8", done)
        assert untagged == [], untagged
    # A quoted string cannot hold CR or LF at all.
    await conn.refused(b"q9", b'CREATE "a\rb"')

    legit = b'* LIST (\\HasNoChildren) "/" Legit\r\n'
    assert await list_lines(conn, b"LIST") == sorted([*listed, legit])
    assert await list_lines(conn, b"LSUB") == sorted([*subscribed, legit.replace(b"LIST", b"LSUB")])
    assert await conn.messages(b"Legit") == 0
    await conn.ok(b"z1", b"NOOP")
    await assert_healthy(live)


@pytest.mark.parametrize(
    "command",
    [b'SUBSCRIBE "a\x01b"', b"SUBSCRIBE NoSuchFolder", b"UNSUBSCRIBE NoSuchFolder"],
    ids=["subscribe-control-char", "subscribe-unknown", "unsubscribe-unknown"],
)
async def test_subscribe_to_a_bad_or_unknown_name_is_refused(
    live: ImapTarget, conns: Conns, caplog: pytest.LogCaptureFixture, command: bytes
) -> None:
    conn = await conns.logged_in(live, MOH)
    await conn.refused(b"s1", command)
    await conn.ok(b"s2", b"NOOP")
    await assert_healthy(live)
    assert_no_server_errors(caplog)


# ---- 7. nothing pipelined after STARTTLS -----------------------------------------------


@pytest.mark.parametrize(
    "pipelined",
    [b"b CAPABILITY\r\n", b"b LOGIN " + quoted(MOH) + b' "whatever"\r\n'],
    ids=["capability", "login"],
)
async def test_command_pipelined_after_starttls_is_never_answered(
    live: ImapTarget, conns: Conns, pipelined: bytes
) -> None:
    conn = await conns.greeted(live.imap_port)
    await conn.send(b"a STARTTLS\r\n" + pipelined)
    rest = await conn.closed()  # fails if the server keeps the connection open
    assert len(rest) <= 1 and all(r.startswith(b"a OK") for r in rest), rest
    await assert_healthy(live)


# ---- 8. long lines ---------------------------------------------------------------------


async def test_line_over_64k_ends_the_connection(live: ImapTarget, conns: Conns) -> None:
    conn = await conns.greeted(live.imap_port)
    await conn.send_hostile(b"a NOOP " + b"x" * (MAX_LINE + 10_000))  # no CRLF at all
    rest = await conn.closed()
    assert rest and rest[0].startswith(b"* BYE [TOOBIG]"), rest

    after_login = await conns.logged_in(live, MOH)
    await after_login.send_hostile(b"b NOOP " + b"x" * 100_000 + b"\r\n")
    rest = await after_login.closed()
    assert rest and rest[0].startswith(b"* BYE [TOOBIG]"), rest

    # Just under the limit: an ordinary BAD, and the connection goes on.
    under = await conns.greeted(live.imap_port)
    await under.refused(b"c", b"NOOP " + b"x" * (MAX_LINE - 100))
    await under.ok(b"d", b"NOOP")
    await assert_healthy(live)


# ---- 9. wrong passwords ----------------------------------------------------------------


async def test_failed_logins_throttle_the_account_and_all_look_alike(
    live: ImapTarget, conns: Conns
) -> None:
    assert live.credentials[FORMER]["status"] != "active"
    conn = await conns.greeted(live.imap_port)
    await conn.starttls(live.tls)

    answers = []
    for attempt in range(5):
        answers.append(await conn.login(MOF, f"wrong password {attempt}"))
    throttled = await conn.login(MOF, password(live, MOF))  # the right one, too late
    suspended = await conn.login(FORMER, password(live, FORMER))
    unknown = await conn.login(NOBODY, "whatever it is")
    wrong = await conn.login(MOH, "not the password")
    answers += [throttled, suspended, unknown, wrong]
    answers.append(await conn.authenticate_plain(MOF, password(live, MOF), tag=b"L1"))
    assert all(a.startswith(b"L1 NO") for a in answers), answers
    assert len(set(answers)) == 1, f"refusals differ (account enumeration): {set(answers)}"

    # The throttle holds on the implicit-TLS port as well.
    other = await conns.greeted(live.imaps_port, live.tls)
    assert await other.login(MOF, password(live, MOF)) == answers[0]
    # Other accounts are not locked out.
    await conn.ok(b"n", b"NOOP")
    await assert_healthy(live)


# ---- 10. garbage and repeated bad commands ---------------------------------------------


def garbage(seed: int, size: int) -> bytes:
    rnd = random.Random(seed)
    return b"\x00" + bytes(rnd.randrange(256) for _ in range(size)) + b"\x00\r\n"


async def test_garbage_before_login_is_refused(live: ImapTarget, conns: Conns) -> None:
    conn = await conns.greeted(live.imap_port)
    await conn.send_hostile(garbage(20240101, 4000))
    rest = await conn.closed()
    assert rest, "no answer to garbage"
    for line in rest:
        assert b" BAD " in line or line.startswith(b"* BYE"), rest
    assert len(rest) <= MAX_BAD_COMMANDS + 1, rest

    # NULs after a valid tag, on a fresh connection: BAD, and it goes on.
    conn = await conns.greeted(live.imap_port)
    await conn.refused(b"a", b"\x00\x00\x00")
    await conn.refused(b"b", b"NOOP \x00")
    await conn.ok(b"c", b"NOOP")

    # Garbage instead of a TLS handshake on the implicit-TLS port.
    raw = await conns.raw(live.imaps_port)
    await raw.send_hostile(garbage(7, 3000))
    rest = await raw.closed()  # perhaps a TLS alert, never IMAP in clear text
    assert not [r for r in rest if r.startswith(b"*")], rest
    await assert_healthy(live)


async def test_repeated_bad_commands_end_the_connection(live: ImapTarget, conns: Conns) -> None:
    # Too deeply nested: the gateway's own count, with a BYE.
    conn = await conns.greeted(live.imap_port)
    for _ in range(MAX_BAD_COMMANDS):
        await conn.refused(b"x", b"NOOP " + nested(MAX_NESTING + 1, b""))
    rest = await conn.closed()
    assert len(rest) == 1 and rest[0].startswith(b"* BYE"), rest

    # Unknown commands: the count is of consecutive ones, and then the server closes.
    conn = await conns.greeted(live.imap_port)
    for _ in range(MAX_BAD_COMMANDS - 1):
        await conn.refused(b"y", b"FROBNICATE")
    await conn.ok(b"y", b"NOOP")
    for _ in range(MAX_BAD_COMMANDS):
        await conn.refused(b"y", b"FROBNICATE")
    rest = await conn.closed()
    assert all(r.startswith(b"* BYE") for r in rest), rest
    await assert_healthy(live)


async def test_repeated_bad_commands_say_bye(
    live: ImapTarget, conns: Conns, caplog: pytest.LogCaptureFixture
) -> None:
    conn = await conns.greeted(live.imap_port)
    for _ in range(MAX_BAD_COMMANDS):
        await conn.refused(b"y", b"FROBNICATE")
    rest = await conn.closed()
    assert len(rest) == 1 and rest[0].startswith(b"* BYE"), rest
    await assert_healthy(live)
    assert_no_server_errors(caplog)


# ---- 11. connection limit --------------------------------------------------------------


async def accepted(target: ImapTarget, conns: Conns) -> Raw:
    """A STARTTLS-port connection that got the greeting, retried while the server
    is still counting connections the test has just closed."""
    deadline = asyncio.get_running_loop().time() + 5
    while True:
        conn = await conns.raw(target.imap_port)
        first = await conn.line()
        if first.startswith(b"* OK "):
            return conn
        assert first.startswith(b"* BYE"), first
        await conn.close()
        assert asyncio.get_running_loop().time() < deadline, "no connection accepted"
        await asyncio.sleep(0.05)


async def test_connection_limit(three_connections: Running, conns: Conns) -> None:
    live = three_connections
    held = [
        await conns.greeted(live.imap_port),
        await conns.greeted(live.imap_port),
        await conns.greeted(live.imaps_port, live.tls),
    ]
    for port, tls in ((live.imap_port, None), (live.imaps_port, live.tls)):
        extra = await conns.raw(port, tls)
        rest = await extra.closed()  # BYE at once, then closed
        assert len(rest) == 1 and rest[0].startswith(b"* BYE"), rest

    # The held connections still work.
    for conn in held:
        await conn.ok(b"k", b"NOOP")
    await held[0].close()
    conn = await accepted(live, conns)
    await healthy_session(conn, live)

    for conn in held:
        await conn.close()
    await healthy_session(await accepted(live, conns), live)

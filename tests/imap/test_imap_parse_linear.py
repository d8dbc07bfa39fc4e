"""Reading an IMAP command costs time linear in its size (gateway/imap/scan.py and
connection.parse_command), and the parser survives arbitrary input (fuzzing).

Linearity is shown two ways: the scan's own count of octets examined equals the
octets outside literals (an operation count, exact), and the CPU time of scanning
and parsing a command of 4n literals is compared with n (process CPU time, the
best of a few runs, with a generous bound: linear work gives about 4, the old
re-scan after every literal gave 16 and more)."""

from __future__ import annotations

import contextlib
import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pymap.parsing import Params
from pymap.parsing.commands import Commands, InvalidCommand

from gateway.imap.connection import MAX_NESTING, Refused, parse_command
from testkit.fuzz import examples, imap_command, split_command

COMMANDS = Commands()


@st.composite
def commands(draw: st.DrawFn) -> tuple[bytes, int, int, int]:
    """A SEARCH with literals, quoted strings and parentheses; with the number of
    literals, their octets, and the deepest nesting it has."""
    parts: list[bytes] = [b"a1 SEARCH"]
    literals = literal_octets = depth = deepest = 0
    for _ in range(draw(st.integers(1, 60))):
        kind = draw(st.sampled_from(["literal", "sync", "quoted", "open", "close", "atom"]))
        if kind in ("literal", "sync"):
            body = draw(st.binary(max_size=40))
            mark = b"+" if kind == "literal" else b""
            parts.append(b" TEXT {%d%b}\r\n" % (len(body), mark) + body)
            literals += 1
            literal_octets += len(body)
        elif kind == "quoted":
            text = draw(st.text(alphabet='ab()"{}\\ 1', max_size=12)).encode()
            parts.append(b' TEXT "' + text.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"')
        elif kind == "open":
            parts.append(b" (")
            depth += 1
            deepest = max(deepest, depth)
        elif kind == "close" and depth:
            parts.append(b")")
            depth -= 1
        else:
            parts.append(b" ALL")
    parts.append(b")" * depth + b"\r\n")
    return b"".join(parts), literals, literal_octets, deepest


@settings(max_examples=examples(200), deadline=None)
@given(commands())
def test_the_scan_examines_each_octet_outside_literals_once(
    shape: tuple[bytes, int, int, int],
) -> None:
    data, literals, literal_octets, deepest = shape
    split = split_command(data)
    assert split is not None
    text, scan = split
    assert scan.examined == len(data) - literal_octets  # linear, exactly
    assert scan.literals == literals
    assert scan.deepest == deepest
    if deepest <= MAX_NESTING:
        with contextlib.suppress(Refused):
            parse_command(COMMANDS, memoryview(text), Params(), b"a1")


def storm(count: int, kind: str) -> bytes:
    """One command with `count` one-octet literals (the shapes of the red-team run)."""
    if kind == "login":
        return b"a1 LOGIN" + b" {1+}\r\nx" * count + b"\r\n"
    if kind == "sync":
        return b"a1 SEARCH" + b" TEXT {1}\r\nx" * count + b"\r\n"
    return b"a1 SEARCH" + b" (TEXT {1+}\r\nx)" * count + b"\r\n"


def cpu_seconds(data: bytes) -> float:
    best = float("inf")
    for _ in range(3):
        started = time.process_time()
        split = split_command(data)
        assert split is not None
        with contextlib.suppress(Refused):
            parse_command(COMMANDS, memoryview(split[0]), Params(), b"a1")
        best = min(best, time.process_time() - started)
    return best


@settings(max_examples=examples(6), deadline=None, suppress_health_check=list(HealthCheck))
@given(st.sampled_from(["login", "sync", "nested"]), st.integers(250, 1000))
def test_reading_time_grows_linearly_with_the_literals(kind: str, n: int) -> None:
    small, large = cpu_seconds(storm(n, kind)), cpu_seconds(storm(4 * n, kind))
    assert large < 10 * max(small, 0.002), (kind, n, small, large)


def test_the_red_team_storm_costs_milliseconds() -> None:
    """20,000 one-octet literals in a LOGIN, read whole (the connection stops at 8)."""
    assert cpu_seconds(storm(20_000, "login")) < 0.5


# ---- fuzzing -----------------------------------------------------------------------------

TOKENS = [b"a1 ", b"LOGIN ", b"SEARCH ", b"APPEND INBOX ", b"OR ", b"NOT ", b"TEXT ", b"(", b")",
          b'"', b"\\", b"{", b"}", b"+}", b"~{", b"{0}\r\n", b"{3+}\r\nabc", b"{99999999999999999999}\r\n",
          b"\r\n", b"\n", b"\r", b"\x00", b"\xff", b" ", b"ALL", b"1:*", b"BODY[", b"]", b"<0.10>",
          b"UID ", b"FETCH ", b"STORE ", b"+FLAGS ", b"\\Seen", b"*", b"%", b"&-", b"&AAA-"]  # fmt: skip


@settings(max_examples=examples(400), deadline=None)
@given(st.lists(st.one_of(st.sampled_from(TOKENS), st.binary(max_size=6)), max_size=40))
def test_fuzzed_commands_never_raise(pieces: list[bytes]) -> None:
    result = imap_command(b"".join(pieces) + b"\r\n")
    assert result is None or isinstance(result, Refused) or result.tag is not None


def test_regression_or_chain_beyond_the_parser_recursion() -> None:
    """Found while fuzzing: pymap recursed once per OR until RecursionError."""
    result = imap_command(b"a1 SEARCH " + b"OR TEXT x " * 3000 + b"ALL ALL\r\n")
    assert isinstance(result, Refused) and result.bad
    ok = imap_command(b"a1 SEARCH " + b"OR TEXT x " * 20 + b"ALL ALL\r\n")
    assert ok is not None and not isinstance(ok, (Refused, InvalidCommand))


def test_regression_literal_length_with_thousands_of_digits() -> None:
    """A length too long for int() (over 4300 digits) is never converted."""
    assert imap_command(b"a1 LOGIN {" + b"9" * 5000 + b"}\r\nx\r\n") is None
    assert imap_command(b"a1 LOGIN x {" + b"9" * 5000 + b"x}\r\n") is not None


def test_regression_eight_bit_search_string_without_charset() -> None:
    """Found while fuzzing: 8-bit octets in a SEARCH literal raised UnicodeDecodeError
    in pymap's parser (a server bug trace, reachable before login)."""
    result = imap_command(b"a1 SEARCH TEXT {1+}\r\n\x80\r\n")
    assert isinstance(result, Refused) and result.bad
    utf8 = imap_command(b"a1 SEARCH CHARSET UTF-8 TEXT {2+}\r\n\xd8\xa3\r\n")
    assert utf8 is not None and not isinstance(utf8, (Refused, InvalidCommand))

"""Fuzzing the SMTP command reader (real listeners, real sockets) and the DATA reader.

Runs briefly in the suite; `HYPOTHESIS_PROFILE=long pytest --timeout=0 tests/intake/smtp/test_smtp_fuzz.py`
runs each target for thousands of examples, `BARID_FUZZ_EXAMPLES=N` for N each
(docs/SUBMISSION.md). A failure found that way becomes a case in REGRESSIONS.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import ssl
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.intake.smtp.data_reader import DataDecoder, EdgeRules
from testkit.fuzz import examples
from testkit.smtp import start

LONG = os.environ.get("HYPOTHESIS_PROFILE") == "long"
FUZZ = settings(
    max_examples=examples(20_000 if LONG else 40),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
SOCKET_FUZZ = settings(
    max_examples=examples(2_000 if LONG else 15),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
REPLY = re.compile(rb"^[2-5]\d\d[ -][\x20-\x7e]*\r$")

# Byte soup that reaches the interesting edges: line ends, dots, NUL, 8-bit, long runs.
PIECES = st.sampled_from(
    [b"\r\n", b"\n", b"\r", b".", b"..", b"\r\n.\r\n", b"\n.\n", b"\x00", b"\xff", b"a",
     b"x" * 20, b"MAIL FROM:<a@b>", b"AUTH PLAIN", b"=", b" ", b"\t"]
)  # fmt: skip
SOUP = st.lists(st.one_of(PIECES, st.binary(max_size=12)), max_size=40).map(b"".join)


def _chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    out, last = [], 0
    for p in points:
        out.append(data[last:p])
        last = p
    return [*out, data[last:]]


def _decode(chunks: list[bytes]) -> tuple[bytes, bytes, bool]:
    decoder, out, rest = DataDecoder(), b"", b""
    for chunk in chunks:
        piece, leftover = decoder.feed(chunk)
        out += piece
        rest += leftover
    return out, rest, decoder.done


def _stuffed(message: bytes) -> bytes:
    return (b"\r\n" + message).replace(b"\r\n.", b"\r\n..")[2:]


@FUZZ
@given(lines=st.lists(SOUP.map(lambda b: b.replace(b"\n", b"")), max_size=12),
       tail=SOUP, cuts=st.lists(st.integers(0, 10_000), max_size=8))  # fmt: skip
def test_a_stuffed_message_comes_back_exactly_however_it_is_cut(
    lines: list[bytes], tail: bytes, cuts: list[int]
) -> None:
    message = b"".join(line.rstrip(b"\r") + b"\r\n" for line in lines)
    wire = _stuffed(message) + b".\r\n" + tail
    out, rest, done = _decode(_chunks(wire, cuts))
    assert done and out == message and rest == tail


@FUZZ
@given(data=SOUP, cuts=st.lists(st.integers(0, 10_000), max_size=8))
def test_any_stream_decodes_the_same_in_one_piece_or_many(data: bytes, cuts: list[int]) -> None:
    assert _decode(_chunks(data, cuts)) == _decode([data])


def _reference_problems(message: bytes, max_line: int, smtputf8: bool) -> set[str]:
    problems = set()
    if any(len(line.removesuffix(b"\r")) > max_line for line in message.split(b"\n")):
        problems.add("line")
    joined = b"\r\n" + message
    end = joined.find(b"\r\n\r\n")
    if not smtputf8 and not (joined if end < 0 else joined[:end]).isascii():
        problems.add("8bit-header")
    return problems


@FUZZ
@given(data=SOUP, cuts=st.lists(st.integers(0, 10_000), max_size=8), utf8=st.booleans())
def test_edge_rules_match_a_plain_reading_however_the_message_is_cut(
    data: bytes, cuts: list[int], utf8: bool
) -> None:
    rules = EdgeRules(smtputf8=utf8, max_line=8)
    for chunk in _chunks(data, cuts):
        rules.feed(chunk)
    expected = _reference_problems(data, 8, utf8)
    assert (rules.problem in expected) if expected else rules.problem == ""


REGRESSIONS: list[bytes] = [
    b"\r\n.\r\n",  # an empty message
    b"NOOP\n\n\n",  # bare line feeds in a row
    b"MAIL FROM:<a@b>\r" * 5 + b"\r\n",  # bare CRs inside a command
    b"\x00\xff\r\n",  # NUL and 8-bit in a command name
    b"x" * 3000 + b"\n",  # a long line ending in a bare LF
    b"\x00",  # found by the fuzzer: aiosmtpd echoed the NUL in "500 ... not recognized"
    b"\x1b[2J\x07 x\r\n",  # escape sequences in an unknown command's name
]


def _converse(port: int, tls: ssl.SSLContext, wire: bytes) -> list[bytes]:
    """Send `wire` then QUIT over implicit TLS; every reply line until the server closes."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    with raw, tls.wrap_socket(raw) as conn:
        conn.sendall(wire + b"\r\nQUIT\r\n")
        data = b""
        try:
            while chunk := conn.recv(65536):
                data += chunk
        except (ConnectionError, ssl.SSLError):
            pass
    return data.split(b"\n")[:-1] if data.endswith(b"\n") else data.split(b"\n")


def _check(lines: list[bytes]) -> None:
    assert lines and lines[0].startswith(b"220 "), lines[:2]
    for line in lines:
        assert REPLY.match(line), line  # a well-formed ASCII reply, nothing else
        assert not line.startswith(b"451 4.3.0"), line  # never an internal error


async def test_the_command_reader_answers_any_bytes_with_replies_only(
    gateway_config: Path,
) -> None:
    running, stop = await start(gateway_config, per_address=1000, max_connections=1000)
    try:

        @SOCKET_FUZZ
        @given(wire=st.one_of(SOUP, st.sampled_from(REGRESSIONS)))
        def target(wire: bytes) -> None:
            _check(_converse(running.smtps, running.client_tls, wire))

        await asyncio.to_thread(target)
        for wire in REGRESSIONS:
            await asyncio.to_thread(
                lambda w=wire: _check(_converse(running.smtps, running.client_tls, w))
            )
    finally:
        await stop()


@pytest.mark.parametrize("wire", REGRESSIONS)
def test_regressions_decode_without_error(wire: bytes) -> None:
    _decode([wire])
    EdgeRules().feed(wire)

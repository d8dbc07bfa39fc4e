"""gateway.delivery.pool: large inputs are parsed in a second process, small ones
here; a child that dies is replaced and the call still answers; a function that
raises in the child raises here."""

from __future__ import annotations

import os

import pytest

from gateway.delivery.pool import ParseError, ParsePool
from gateway.imap.describe import describe, read_description


def where(data: bytes) -> bytes:
    """The pid of the process that ran it; exits hard if asked to in a child."""
    parent = int(data.split(b":", 1)[0])
    if data.endswith(b"die") and os.getpid() != parent:
        os._exit(3)
    if data.endswith(b"raise"):
        raise ValueError("asked to")
    return str(os.getpid()).encode()


async def test_large_input_runs_in_another_process_small_here() -> None:
    pool = ParsePool("test_parse_pool:where", in_process_below=100)
    try:
        me = str(os.getpid()).encode()
        assert await pool(me + b":small") == me
        big = me + b":" + b"x" * 200
        other = await pool(big)
        assert other != me and int(other) > 0
        assert await pool(big) == other  # the same child, kept for the next call
    finally:
        await pool.close()


async def test_a_dead_child_is_replaced_and_the_call_still_answers() -> None:
    pool = ParsePool("test_parse_pool:where", in_process_below=10)
    try:
        me = str(os.getpid()).encode()
        assert await pool(me + b":" + b"y" * 50 + b"die") == me  # retried here
        assert await pool(me + b":" + b"y" * 50) != me  # a new child
    finally:
        await pool.close()


async def test_describe_in_the_pool_equals_describe_here() -> None:
    body = b"Q" * 76 + b"\r\n"
    raw = (
        b"From: a@moh.gov.example\r\nSubject: big\r\nContent-Type: application/pdf\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n" + body * 2000
    )
    pool = ParsePool("gateway.imap.describe:describe", in_process_below=1024)
    try:
        assert read_description(await pool(raw)) == read_description(describe(raw))
    finally:
        await pool.close()


async def test_an_exception_in_the_child_is_raised_here() -> None:
    pool = ParsePool("test_parse_pool:where", in_process_below=10)
    try:
        me = str(os.getpid()).encode()
        with pytest.raises(ParseError, match="ValueError"):
            await pool(me + b":" + b"z" * 50 + b"raise")
        assert await pool(me + b":" + b"z" * 50) != me  # the child is still there
    finally:
        await pool.close()

"""The stored description format: version 2 (deflated) is what `describe` writes,
version 1 (JSON with base64 fields, written before) is still read, the same."""

from __future__ import annotations

import base64
import json

import pytest

from gateway.imap.describe import describe, read_description

RAW = (
    b"From: minister@moh.gov.example\r\nTo: clerk@mof.gov.example\r\n"
    b"Subject: =?utf-8?b?2KrYrNix2KjYqQ==?=\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n'
    b"Content-Type: text/plain; charset=utf-8\r\n\r\nletter text\r\n--b\r\n"
    b'Content-Type: application/pdf; name="letter.pdf"\r\n'
    b"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--b--\r\n"
)


def test_version_two_reads_back_as_version_one_did_and_is_smaller() -> None:
    stored = describe(RAW)
    now = read_description(stored)
    fields = {
        "v": 1,
        "header": base64.b64encode(now.header).decode(),
        "envelope": base64.b64encode(now.envelope).decode(),
        "body": base64.b64encode(now.body).decode(),
        "bodystructure": base64.b64encode(now.bodystructure).decode(),
        "size": now.size,
        "lines": now.lines,
    }
    old = json.dumps(fields, separators=(",", ":")).encode("ascii")
    assert read_description(old) == now
    assert len(stored) < len(old)
    assert now.header.startswith(b"From: minister@moh.gov.example\r\n")


@pytest.mark.parametrize("data", [b"", b"not a description", b'{"v": 3}', b"x\x9c\x00"])
def test_anything_else_is_refused(data: bytes) -> None:
    with pytest.raises(ValueError):
        read_description(data)

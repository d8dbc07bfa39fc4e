"""DKIM: both signatures verify with dkimpy, and changing a covered header or the body breaks them."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import re
from collections.abc import Callable

import dkim
import pytest
from cryptography.hazmat.primitives import serialization

from gateway.model.message import Submission
from gateway.stamping import DkimSigner, Stamper
from gateway.stamping.dkim import DkimError, relaxed_body, relaxed_header
from keys.dkim_dns import dkim_records
from keys.gateway_keys import GatewayKeys

DOMAIN = "moh.gov.xx"
PREFIX = "barid"


@pytest.fixture(scope="module")
def signer(gateway_keys: GatewayKeys) -> DkimSigner:
    return DkimSigner(gateway_keys, DOMAIN, PREFIX)


@pytest.fixture(scope="module")
def dnsfunc(gateway_keys: GatewayKeys) -> Callable[..., bytes | None]:
    """A resolver answering only with the records `barid dkim dns` would publish."""
    records = {
        f"{r.name}.".encode(): r.value.encode() for r in dkim_records(gateway_keys, PREFIX, DOMAIN)
    }

    def lookup(name: bytes, timeout: int = 5) -> bytes | None:
        return records.get(name)

    return lookup


@pytest.fixture
def copy_bytes(
    stamper: Stamper,
    submission_factory: Callable[..., Submission],
    original_factory: Callable[[int], bytes],
    issued_at: dt.datetime,
) -> bytes:
    raw = original_factory(20_000)
    # Odd whitespace in the original exercises relaxed body canonicalization.
    raw = raw.replace(b"See attached.\r\n", b"See  attached.\t \r\n\r\n\r\n")
    stamp = stamper.stamp(submission_factory(raw), "MOH/2025/000042", issued_at)
    return stamp.copies[0].assemble(raw)


def verify_all(message: bytes, dnsfunc: Callable[..., bytes | None]) -> list[bool]:
    results = []
    for index in range(2):
        verifier = dkim.DKIM(message)
        try:
            results.append(bool(verifier.verify(idx=index, dnsfunc=dnsfunc)))
        except dkim.DKIMException:  # e.g. "body hash mismatch"
            results.append(False)
    return results


def test_both_signatures_verify(
    signer: DkimSigner, dnsfunc: Callable[..., bytes | None], copy_bytes: bytes
) -> None:
    fields = signer.sign(copy_bytes)
    assert fields.count(b"DKIM-Signature:") == 2
    assert b"a=rsa-sha256" in fields and b"a=ed25519-sha256" in fields
    assert b"s=barid-rsa;" in fields and b"s=barid-ed25519;" in fields
    assert all(len(line) <= 100 for line in fields.split(b"\r\n"))
    assert verify_all(fields + copy_bytes, dnsfunc) == [True, True]
    assert signer.signed(copy_bytes, timestamp=1_700_000_000).endswith(copy_bytes)


def test_signed_headers_cover_barid_fields(signer: DkimSigner, copy_bytes: bytes) -> None:
    fields = signer.sign(copy_bytes).decode()
    match = re.search(r"h=([^;]+);", fields)
    assert match is not None
    names = [n.strip() for n in match.group(1).split(":")]
    for name in ("from", "to", "subject", "date", "message-id", "barid-registry",
                 "barid-employee-code", "barid-trace", "barid-verify", "barid-classification"):  # fmt: skip
        # Present once, listed twice: a second instance added later breaks the signature.
        assert names.count(name) == 2, name


@pytest.mark.parametrize(
    "change",
    [
        (rb"Barid-Trace: [0-9A-Z]{5}-[0-9A-Z]{5}", b"Barid-Trace: 00000-00000"),
        (rb"Barid-Registry: \S+", b"Barid-Registry: MOH/2025/000043"),
        (rb"Barid-Classification: \w+", b"Barid-Classification: public"),
        (rb"Barid-Verify: ", b"Barid-Verify: https://evil.example/v/"),
        (rb"Barid-Employee-Code: ", b"Barid-Employee-Code: X"),
        (rb"To: ", b"To: someone.else@x.gov.xx, "),
        (rb"Subject: ", b"Subject: FW: "),
    ],
)
def test_changing_a_covered_header_breaks_both(
    signer: DkimSigner,
    dnsfunc: Callable[..., bytes | None],
    copy_bytes: bytes,
    change: tuple[bytes, bytes],
) -> None:
    signed = signer.signed(copy_bytes)
    pattern, replacement = change
    tampered = re.sub(pattern, replacement, signed, count=1)
    assert tampered != signed
    assert verify_all(tampered, dnsfunc) == [False, False]


def test_adding_a_barid_header_breaks_both(
    signer: DkimSigner, dnsfunc: Callable[..., bytes | None], copy_bytes: bytes
) -> None:
    signed = signer.signed(copy_bytes)
    head_end = signed.index(b"\r\n\r\n")
    tampered = signed[:head_end] + b"\r\nBarid-Classification: public" + signed[head_end:]
    assert verify_all(tampered, dnsfunc) == [False, False]


def test_changing_the_body_breaks_both(
    signer: DkimSigner, dnsfunc: Callable[..., bytes | None], copy_bytes: bytes
) -> None:
    signed = signer.signed(copy_bytes)
    tampered = signed.replace(
        b"Content-Type: text/plain\r\n\r\nSee", b"Content-Type: text/plain\r\n\r\nSea"
    )
    assert tampered != signed
    assert verify_all(tampered, dnsfunc) == [False, False]
    # Whitespace changes that relaxed canonicalization ignores keep both signatures valid.
    relaxed = signed.replace(b"See  attached.", b"See \t attached.")
    assert relaxed != signed
    assert verify_all(relaxed, dnsfunc) == [True, True]


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"\r\n\r\n",
        b"a  b\t\tc \r\n\t\r\n\r\n",
        b"no final line break",
        b"x \r\n y\r\n  \r\nz\t\r\n\r\n",
    ],
)
def test_body_hash_matches_dkimpy(body: bytes, gateway_keys: GatewayKeys) -> None:
    """Our relaxed body hash equals the one dkimpy computes for the same body."""
    message = b"From: a@moh.gov.xx\r\nSubject: t\r\n\r\n" + body
    pem = gateway_keys.dkim_rsa_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    theirs = dkim.sign(message, b"s", DOMAIN.encode(), pem, include_headers=[b"from"],
                       canonicalize=(b"relaxed", b"relaxed"))  # fmt: skip
    match = re.search(rb"bh=([^;]+);", theirs)
    assert match is not None
    ours = base64.b64encode(hashlib.sha256(relaxed_body(body)).digest())
    assert ours == re.sub(rb"\s", b"", match.group(1))


def test_relaxed_header() -> None:
    assert relaxed_header(b"SUBJECT ", b" a \t b\r\n\tc  ") == b"subject:a b c\r\n"


def test_refuses_messages_without_from_or_body_separator(signer: DkimSigner) -> None:
    with pytest.raises(DkimError):
        signer.sign(b"To: a@b\r\nSubject: x\r\n\r\nbody\r\n")
    with pytest.raises(DkimError):
        signer.sign(b"From: a@b\r\nSubject: x\r\n")

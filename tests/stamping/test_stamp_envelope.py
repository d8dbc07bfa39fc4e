"""Stamped copies: headers, bilingual cover, certificate.json, and the original kept byte for byte.

The original is a real PGP/MIME (RFC 3156) message signed with gpg; after the copy is
built and parsed, the embedded original is cut out and its signature checked again.
"""

from __future__ import annotations

import base64
import datetime as dt
import email
import email.policy
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

import pytest

from gateway.model.message import Stamp, Submission
from gateway.stamping import Stamper
from gateway.stamping.envelope import EnvelopeError, encode_subject, transfer_encoding_of
from keys.demo_material import make_openpgp_key, stop_gpg_agent
from keys.gateway_keys import GatewayKeys
from keys.tokens import TokenContents, verify_token
from policies.directory import Clearance

SENDER = "ahmad.ali@moh.gov.xx"
RECIPIENTS = ("finance@mof.gov.xx", "audit@mof.gov.xx", "planning@moh.gov.xx")
OUTER = "pgp-outer-7f3a"
SUBJECT = "تقرير الربع الأول / Q1 report"
REGISTRY = "MOH/2025/000042"


@dataclass(frozen=True)
class PgpOriginal:
    home: Path
    raw: bytes
    signed_part: bytes
    document: bytes


@pytest.fixture(scope="module")
def pgp_original_module() -> Iterator[PgpOriginal]:
    home = Path(tempfile.mkdtemp(prefix="g", dir="/tmp"))
    try:
        yield _make_pgp_original(home)
    finally:
        stop_gpg_agent(home)
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def pgp(need_tool: Callable[[str], str], request: pytest.FixtureRequest) -> PgpOriginal:
    """A PGP/MIME-signed original (skips, or fails under BARID_REQUIRE_ALL=1, without gpg)."""
    need_tool("gpg")
    need_tool("gpgconf")
    original: PgpOriginal = request.getfixturevalue("pgp_original_module")
    return original


def _make_pgp_original(home: Path) -> PgpOriginal:
    fingerprint, _, _ = make_openpgp_key(home, "Ahmad Ali", SENDER, "MOH-000042-K")
    document = b"%PDF-1.7\n" + os.urandom(72_000)
    # Trailing spaces and tabs on purpose: DKIM's relaxed canonicalization must cope.
    text = "السلام عليكم،\r\nمرفق تقرير الربع الأول.  \r\nRegards,\t\r\n".encode()
    pdf_b64 = base64.encodebytes(document).replace(b"\n", b"\r\n")
    signed_part = (
        b'Content-Type: multipart/mixed; boundary="inner-2b"\r\n\r\n'
        b"--inner-2b\r\n"
        b'Content-Type: text/plain; charset="utf-8"\r\n'
        b"Content-Transfer-Encoding: 8bit\r\n\r\n" + text + b"--inner-2b\r\n"
        b'Content-Type: application/pdf; name="report-q1.pdf"\r\n'
        b'Content-Disposition: attachment; filename="report-q1.pdf"\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\n" + pdf_b64 + b"--inner-2b--\r\n"
    )
    work = Path(tempfile.mkdtemp(prefix="s", dir="/tmp"))
    try:
        (work / "part").write_bytes(signed_part)
        subprocess.run(
            ["gpg", "--homedir", str(home), "--batch", "--yes", "--local-user", fingerprint,
             "--detach-sign", "--armor", "--output", str(work / "part.asc"), str(work / "part")],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        signature = (work / "part.asc").read_bytes().replace(b"\r\n", b"\n")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    head = (
        f"From: Ahmad Ali <{SENDER}>\r\n"
        f"To: {', '.join(RECIPIENTS)}\r\n"
        f"Subject: {encode_subject(SUBJECT)}\r\n"
        "Date: Sat, 01 Mar 2025 13:15:00 +0300\r\n"
        "Message-ID: <q1-report.1@moh.gov.xx>\r\n"
        "MIME-Version: 1.0\r\n"
        "Barid-Employee-Code: MOH-000042-K\r\n"
        "Barid-Classification: confidential\r\n"
        "Content-Type: multipart/signed; micalg=pgp-sha256;\r\n"
        f' protocol="application/pgp-signature"; boundary="{OUTER}"\r\n'
        "\r\n"
        "This is an OpenPGP/MIME signed message (RFC 4880 and 3156)\r\n"
        f"--{OUTER}\r\n"
    )
    tail = (
        f"\r\n--{OUTER}\r\n"
        'Content-Type: application/pgp-signature; name="signature.asc"\r\n'
        'Content-Disposition: attachment; filename="signature.asc"\r\n\r\n'
    )
    raw = (
        head.encode()
        + signed_part
        + tail.encode()
        + signature.replace(b"\n", b"\r\n")
        + f"\r\n--{OUTER}--\r\n".encode()
    )
    return PgpOriginal(home, raw, signed_part, document)


def _submission(pgp: PgpOriginal, factory: Callable[..., Submission]) -> Submission:
    return factory(
        pgp.raw,
        documents=(("report-q1.pdf", pgp.document),),
        recipients=RECIPIENTS,
        subject=SUBJECT,
        classification=Clearance.CONFIDENTIAL,
        message_id="<q1-report.1@moh.gov.xx>",
    )


@pytest.fixture
def stamped(
    pgp: PgpOriginal,
    stamper: Stamper,
    submission_factory: Callable[..., Submission],
    issued_at: dt.datetime,
) -> tuple[Submission, Stamp]:
    submission = _submission(pgp, submission_factory)
    return submission, stamper.stamp(submission, REGISTRY, issued_at)


def cut_embedded_original(copy: bytes, boundary: str) -> bytes:
    """The message/rfc822 body, cut out by its boundaries as a MIME reader does."""
    delimiter = f"\r\n--{boundary}\r\n".encode()
    first = copy.index(delimiter)
    second = copy.index(delimiter, first + 1)
    body_start = copy.index(b"\r\n\r\n", second + len(delimiter)) + 4
    body_end = copy.index(f"\r\n--{boundary}".encode(), body_start)
    return copy[body_start:body_end]


def gpg_verify(home: Path, data: bytes, signature: bytes) -> subprocess.CompletedProcess[bytes]:
    work = Path(tempfile.mkdtemp(prefix="v", dir="/tmp"))
    try:
        (work / "data").write_bytes(data)
        (work / "data.asc").write_bytes(signature)
        return subprocess.run(
            ["gpg", "--homedir", str(home), "--batch", "--status-fd", "1", "--verify",
             str(work / "data.asc"), str(work / "data")],
            check=False, capture_output=True, timeout=60,
        )  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)


def split_pgp_mime(original: bytes) -> tuple[bytes, bytes]:
    """(signed part, signature) of a multipart/signed message (RFC 3156 §5)."""
    opener = f"\r\n--{OUTER}\r\n".encode()
    start = original.index(opener) + len(opener)
    end = original.index(opener, start)
    signature_part = original[end + len(opener) : original.index(f"\r\n--{OUTER}--".encode())]
    signature = signature_part[signature_part.index(b"\r\n\r\n") + 4 :]
    return original[start:end], signature


# ---------------------------------------------------------------- the copies


def test_one_copy_per_recipient_with_own_trace_code(stamped: tuple[Submission, Stamp]) -> None:
    submission, stamp = stamped
    assert [c.recipient for c in stamp.copies] == list(RECIPIENTS)
    assert len({c.trace_code for c in stamp.copies}) == len(RECIPIENTS)
    assert stamp.registry == REGISTRY
    assert stamp.issued_at == dt.datetime(2025, 3, 1, 10, 15, 30, tzinfo=dt.UTC)
    for copy in stamp.copies:
        data = copy.assemble(submission.raw)
        assert data == copy.prefix + submission.raw + copy.suffix
        # CRLF everywhere: no bare LF and no bare CR.
        assert b"\n" not in data.replace(b"\r\n", b"")
        assert b"\r" not in data.replace(b"\r\n", b"")


def test_headers(stamped: tuple[Submission, Stamp], gateway_keys: GatewayKeys) -> None:
    submission, stamp = stamped
    copy = stamp.copies[0]
    msg = email.message_from_bytes(copy.assemble(submission.raw), policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    assert msg["From"].addresses[0].addr_spec == SENDER
    assert str(msg["To"]) == copy.recipient
    assert str(msg["Subject"]) == f"[{REGISTRY}] {SUBJECT}"
    assert msg["Date"].datetime == stamp.issued_at
    assert re.fullmatch(r"<[^<>@\s]+@moh\.gov\.xx>", str(msg["Message-ID"]))
    assert str(msg["Message-ID"]) != "<q1-report.1@moh.gov.xx>"
    assert str(msg["References"]) == "<q1-report.1@moh.gov.xx>"
    assert msg["MIME-Version"] == "1.0"
    assert msg["Barid-Registry"] == REGISTRY
    assert msg["Barid-Employee-Code"] == "MOH-000042-K"
    assert msg["Barid-Trace"] == copy.trace_code
    assert msg["Barid-Classification"] == "confidential"
    assert msg["Barid-Verify"] == stamp.verify_url
    assert stamp.verify_url == f"https://verify.health-ministry.gov.xx/v/{stamp.token}"
    contents = verify_token(stamp.token, gateway_keys.verification_keys)
    assert isinstance(contents, TokenContents)
    assert (contents.agency, contents.year, contents.serial) == ("MOH", 2025, 42)
    assert contents.covers_documents([submission.documents[0].sha256])
    assert contents.issued_at == stamp.issued_at
    # Every header line is ASCII (the Subject is RFC 2047 encoded) and short enough.
    head = copy.prefix[: copy.prefix.index(b"\r\n\r\n")]
    assert head.isascii()
    assert max(len(line) for line in head.split(b"\r\n")) <= 998


def test_structure_and_cover(stamped: tuple[Submission, Stamp]) -> None:
    submission, stamp = stamped
    copy = stamp.copies[1]
    msg = email.message_from_bytes(copy.assemble(submission.raw), policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    assert msg.get_content_type() == "multipart/mixed"
    assert not msg.defects
    related, embedded, certificate = msg.iter_parts()
    assert related.get_content_type() == "multipart/related"
    alternative, image = related.iter_parts()
    assert [p.get_content_type() for p in alternative.iter_parts()] == ["text/plain", "text/html"]
    plain, html = (p.get_content() for p in alternative.iter_parts())
    doc = submission.documents[0]
    for text in (plain, html):
        for needle in (REGISTRY, copy.trace_code, doc.name, doc.sha256, "confidential"):
            assert needle in text
        assert stamp.verify_url in text
        # Arabic first, English second.
        assert text.index("رقم القيد") < text.index("Registry number")
        for arabic in ("التصنيف", "سرّي", "رمز التتبّع", "رابط التحقّق", "الوثائق", "وزارة الصحة"):
            assert arabic in text
        for english in (
            "Classification",
            "Trace code",
            "Verify",
            "Documents",
            "Ministry of Health",
        ):
            assert english in text
    assert '<html lang="ar" dir="rtl">' in html and '<div dir="ltr" lang="en">' in html
    # The QR image is inline, referenced by Content-ID from the HTML.
    assert image.get_content_type() == "image/png"
    cid = str(image["Content-ID"]).strip("<>")
    assert f'src="cid:{cid}"' in html
    assert image.get_content().startswith(b"\x89PNG")
    # The original, as message/rfc822 with an honest transfer encoding.
    assert embedded.get_content_type() == "message/rfc822"
    assert embedded["Content-Transfer-Encoding"] == "8bit"
    inner = embedded.get_content()
    assert inner["Message-ID"] == "<q1-report.1@moh.gov.xx>"
    assert certificate.get_filename() == "certificate.json"


def test_certificate(stamped: tuple[Submission, Stamp], gateway_keys: GatewayKeys) -> None:
    submission, stamp = stamped
    copy = stamp.copies[2]
    msg = email.message_from_bytes(copy.assemble(submission.raw), policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    part = list(msg.iter_parts())[2]
    assert part.get_content_type() == "application/json"
    data = json.loads(part.get_content())
    doc = submission.documents[0]
    assert data == {
        **stamp.certificate,
        "recipient": copy.recipient,
        "trace_code": copy.trace_code,
    }
    assert data["registry"] == REGISTRY
    assert data["issuing_agency"] == "MOH"
    assert data["issued_at"] == "2025-03-01T10:15:30Z"
    assert data["sender"] == {
        "address": SENDER,
        "name_en": "Ahmad Ali",
        "name_ar": "أحمد علي",
        "agency": "MOH",
        "agency_name_en": "Ministry of Health",
        "agency_name_ar": "وزارة الصحة",
        "code": "MOH-000042-K",
    }
    assert data["classification"] == "confidential"
    assert data["documents"] == [
        {"name": doc.name, "content_type": doc.content_type, "sha256": doc.sha256,
         "size": len(doc.data)}
    ]  # fmt: skip
    assert data["original"]["sha256"] == hashlib.sha256(submission.raw).hexdigest()
    assert data["token"] == stamp.token
    assert data["verify_url"] == stamp.verify_url
    assert data["key_id"] == gateway_keys.signing_key_id
    assert "recipient" not in stamp.certificate and "trace_code" not in stamp.certificate


def test_original_is_byte_identical_and_still_verifies(
    stamped: tuple[Submission, Stamp], pgp: PgpOriginal
) -> None:
    submission, stamp = stamped
    for copy in stamp.copies:
        data = copy.assemble(submission.raw)
        msg = email.message_from_bytes(data, policy=email.policy.default)
        embedded = cut_embedded_original(data, msg.get_boundary() or "")
        assert embedded == pgp.raw
    signed_part, signature = split_pgp_mime(embedded)
    assert signed_part == pgp.signed_part
    result = gpg_verify(pgp.home, signed_part, signature)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    assert b"[GNUPG:] GOODSIG" in result.stdout
    # ...and a changed byte is caught by the same check.
    tampered = signed_part.replace(b"Regards", b"Regardz")
    assert gpg_verify(pgp.home, tampered, signature).returncode != 0


def test_boundary_never_occurs_in_the_original(
    stamper: Stamper,
    submission_factory: Callable[..., Submission],
    original_factory: Callable[[int], bytes],
    issued_at: dt.datetime,
) -> None:
    raw = original_factory(2000)
    for _ in range(20):
        stamp = stamper.stamp(submission_factory(raw), REGISTRY, issued_at)
        msg = email.message_from_bytes(stamp.copies[0].assemble(raw), policy=email.policy.default)
        boundaries = {str(p.get_boundary()) for p in msg.walk() if p.is_multipart()}
        assert "b1" in boundaries  # the original's own, seen through message/rfc822
        assert not any(b.encode() in raw for b in boundaries if b != "b1")


def test_transfer_encoding_describes_the_original() -> None:
    assert transfer_encoding_of(b"Subject: x\r\n\r\nhello\r\n") == "7bit"
    assert transfer_encoding_of("Subject: x\r\n\r\nمرحبا\r\n".encode()) == "8bit"
    assert transfer_encoding_of(b"Subject: x\r\n\r\n" + b"a" * 999 + b"\r\n") == "binary"
    assert transfer_encoding_of(b"Subject: x\r\n\r\na\x00b\r\n") == "binary"


def test_subject_encoding() -> None:
    assert encode_subject("[MOH/2025/000001] Plain") == "[MOH/2025/000001] Plain"
    encoded = encode_subject("[MOH/2025/000001] تقرير\r\nBcc: evil@x")
    assert encoded.isascii()
    assert "\r\nBcc" not in encoded
    long = encode_subject("تقرير " * 40)
    lines = long.split("\r\n")
    assert len(lines) > 1 and all(len(line) <= 78 for line in lines)
    assert all(line.startswith(" ") for line in lines[1:])  # folded (RFC 5322 §2.2.3)
    msg = email.message_from_bytes(
        b"Subject: " + encoded.encode() + b"\r\n\r\n", policy=email.policy.default
    )
    assert str(msg["Subject"]) == "[MOH/2025/000001] تقرير Bcc: evil@x"


def test_header_injection_is_refused(
    stamper: Stamper,
    submission_factory: Callable[..., Submission],
    original_factory: Callable[[int], bytes],
    issued_at: dt.datetime,
) -> None:
    submission = submission_factory(original_factory(500), recipients=("a@b.gov.xx\r\nBcc: x@y",))
    with pytest.raises(EnvelopeError):
        stamper.stamp(submission, REGISTRY, issued_at)


def test_inputs_are_checked(
    stamper: Stamper,
    submission_factory: Callable[..., Submission],
    original_factory: Callable[[int], bytes],
    gateway_keys: GatewayKeys,
) -> None:
    submission = submission_factory(original_factory(500))
    with pytest.raises(ValueError):
        stamper.stamp(submission, "MOH/2025/42", dt.datetime.now(dt.UTC))
    with pytest.raises(ValueError):
        stamper.stamp(submission, REGISTRY, dt.datetime(2025, 3, 1))  # naive
    with pytest.raises(ValueError, match="public_url"):
        Stamper(gateway_keys, "https://" + "v" * 90 + ".example", b"k" * 32)
    with pytest.raises(ValueError, match="public_url"):
        Stamper(gateway_keys, "ftp://x.example", b"k" * 32)


def test_stamp_is_fast(
    stamper: Stamper,
    submission_factory: Callable[..., Submission],
    original_factory: Callable[[int], bytes],
    issued_at: dt.datetime,
) -> None:
    """100 KB message, three recipients: a few ms (generous bound for loaded CI machines)."""
    submission = submission_factory(original_factory(100_000), recipients=RECIPIENTS)
    stamper.stamp(submission, REGISTRY, issued_at)
    runs = 20
    start = time.perf_counter()
    for _ in range(runs):
        stamper.stamp(submission, REGISTRY, issued_at)
    assert (time.perf_counter() - start) / runs < 0.05


def test_trace_collision_inside_a_message_is_resolved(
    stamper: Stamper,
    submission_factory: Callable[..., Submission],
    original_factory: Callable[[int], bytes],
    issued_at: dt.datetime,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import gateway.stamping.stamper as stamper_module

    def colliding(key: bytes, registry: str, recipient: str, attempt: int = 0) -> str:
        return f"AAAAA-{attempt:05d}"  # every recipient collides on attempt 0

    monkeypatch.setattr(stamper_module, "trace_code", colliding)
    submission = submission_factory(original_factory(500), recipients=RECIPIENTS)
    stamp = stamper.stamp(submission, REGISTRY, issued_at)
    assert [c.trace_code for c in stamp.copies] == ["AAAAA-00000", "AAAAA-00001", "AAAAA-00002"]


def test_duplicate_recipient_is_refused(
    stamper: Stamper,
    submission_factory: Callable[..., Submission],
    original_factory: Callable[[int], bytes],
    issued_at: dt.datetime,
) -> None:
    submission = submission_factory(original_factory(500), recipients=("a@b.gov.xx",) * 2)
    with pytest.raises(ValueError, match="twice"):
        stamper.stamp(submission, REGISTRY, issued_at)

"""PGP/MIME (RFC 3156) messages signed by real gpg: the reported bytes verify."""

from __future__ import annotations

import email.policy
from email.encoders import encode_7or8bit
from email.mime.application import MIMEApplication
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText

from gateway.mime import Analysis, MimeLimits, analyze
from testkit.mime_samples import (
    GpgSigner,
    attachment,
    entity,
    message,
    multipart,
    pdf_bytes,
    text_part,
)

LIMITS = MimeLimits()
PGP = '; protocol="application/pgp-signature"; micalg=pgp-sha256'


def pgp_signed(inner: bytes, gpg: GpgSigner, boundary: str = "sig-outer") -> bytes:
    signature = entity(
        [("Content-Type", 'application/pgp-signature; name="OpenPGP_signature.asc"'),
         ("Content-Description", "OpenPGP digital signature"),
         ("Content-Disposition", 'attachment; filename="OpenPGP_signature.asc"')],
        gpg.sign(inner),
    )  # fmt: skip
    return multipart("signed", [inner, signature], boundary, PGP)


def flip_in_document(raw: bytes, analysis: Analysis) -> bytes:
    """Change one base64 character inside the first document's body."""
    part = next(p for p in analysis.root.walk() if p.path == analysis.documents[0].path)
    at = part.body_start + 10
    swapped = b"B" if raw[at : at + 1] != b"B" else b"C"
    return raw[:at] + swapped + raw[at + 1 :]


def test_hand_built_pgp_mime_bytes_verify(gpg: GpgSigner) -> None:
    inner = multipart(
        "mixed", [text_part("Please find the letter.\nمع التحية\n"), attachment("letter.pdf", pdf_bytes())],
        "mixed-inner",
    )  # fmt: skip
    raw = message(pgp_signed(inner, gpg))
    result = analyze(raw, LIMITS)
    assert isinstance(result, Analysis)
    (unit,) = result.signed_units
    assert unit.kind == "pgp-mime"
    assert unit.path == () and unit.signature_path == (2,)
    assert unit.micalg == "pgp-sha256"
    assert unit.signed_bytes == inner
    assert unit.signed_range is not None
    assert raw[unit.signed_range[0] : unit.signed_range[1]] == inner
    assert unit.signature_bytes.startswith(b"-----BEGIN PGP SIGNATURE-----")
    assert gpg.verify(unit.signed_bytes, unit.signature_bytes)

    (document,) = result.documents
    assert document.name == "letter.pdf"
    assert document.data == pdf_bytes()
    assert document.covered_by == (0,) and unit.covers == (0,)
    assert not result.uncovered_documents
    assert [t.covered_by for t in result.inline_texts] == [(0,)]

    tampered = analyze(flip_in_document(raw, result), LIMITS)
    assert isinstance(tampered, Analysis)
    assert tampered.documents[0].data != document.data
    (changed,) = tampered.signed_units
    assert not gpg.verify(changed.signed_bytes, changed.signature_bytes)


def test_email_package_message_like_thunderbird(gpg: GpgSigner) -> None:
    """multipart/signed around multipart/mixed (text + attachment), built by `email`."""
    policy = email.policy.SMTP
    inner = MIMEMultipart("mixed", policy=policy)
    inner.attach(
        MIMEText(
            "Dear colleague,\nthe signed decree is attached.\n", "plain", "utf-8", policy=policy
        )
    )
    document = MIMEApplication(pdf_bytes(30_000), "pdf", policy=policy)
    document.add_header("Content-Disposition", "attachment", filename="decree 2025.pdf")
    inner.attach(document)
    inner_bytes = inner.as_bytes(policy=policy)
    signature = MIMEApplication(
        gpg.sign(inner_bytes), "pgp-signature", _encoder=encode_7or8bit, policy=policy,
        name="OpenPGP_signature.asc",
    )  # fmt: skip
    signature.add_header("Content-Description", "OpenPGP digital signature")
    outer = MIMEMultipart(
        "signed", policy=policy, protocol="application/pgp-signature", micalg="pgp-sha256"
    )
    outer.preamble = "This is an OpenPGP/MIME signed message (RFC 4880 and 3156)"
    outer.attach(inner)
    outer.attach(signature)
    outer["From"] = "Ali Hassan <ali.hassan@moh.gov.example>"
    outer["To"] = "minister@moh.gov.example"
    outer["Subject"] = "=?utf-8?b?2YXYsdiz2YjZhQ==?= 12"
    outer["Message-ID"] = "<tb-1@moh.gov.example>"
    raw = outer.as_bytes(policy=policy)
    assert inner_bytes in raw  # the composer kept the signed part's bytes verbatim

    result = analyze(raw, LIMITS)
    assert isinstance(result, Analysis), result
    assert result.subject == "مرسوم 12"
    (unit,) = result.signed_units
    assert unit.signed_bytes == inner_bytes
    assert gpg.verify(unit.signed_bytes, unit.signature_bytes)
    (doc,) = result.documents
    assert doc.name == "decree 2025.pdf"
    assert doc.content_type == "application/pdf"
    assert doc.data == pdf_bytes(30_000)
    assert doc.covered_by == (0,)

    tampered = analyze(flip_in_document(raw, result), LIMITS)
    assert isinstance(tampered, Analysis)
    assert not gpg.verify(
        tampered.signed_units[0].signed_bytes, tampered.signed_units[0].signature_bytes
    )


def test_signed_leaf_with_transport_padding_and_preamble(gpg: GpgSigner) -> None:
    """The signed part is a single attachment; delimiters carry trailing blanks."""
    inner = attachment("memo.txt", b"memo\r\n", "text/plain")
    signature = entity([("Content-Type", "application/pgp-signature")], gpg.sign(inner))
    body = (
        b"preamble text\r\n--b1  \r\n" + inner + b"\r\n--b1\t\r\n" + signature
        + b"\r\n--b1-- \r\nepilogue\r\n"
    )  # fmt: skip
    raw = message(entity([("Content-Type", "multipart/signed; boundary=b1" + PGP)], body))
    result = analyze(raw, LIMITS)
    assert isinstance(result, Analysis), result
    (unit,) = result.signed_units
    assert unit.signed_bytes == inner
    assert gpg.verify(unit.signed_bytes, unit.signature_bytes)
    assert [d.name for d in result.documents] == ["memo.txt"]
    assert result.documents[0].covered_by == (0,)


def test_unsigned_attachment_beside_signed_part_is_uncovered(gpg: GpgSigner) -> None:
    inner = multipart(
        "mixed", [text_part("signed text\n"), attachment("signed.pdf", pdf_bytes())], "in"
    )
    raw = message(
        multipart(
            "mixed",
            [pgp_signed(inner, gpg, "sg"), attachment("extra.pdf", b"%PDF unsigned")],
            "top",
        )
    )
    result = analyze(raw, LIMITS)
    assert isinstance(result, Analysis), result
    (unit,) = result.signed_units
    assert unit.path == (1,)
    assert gpg.verify(unit.signed_bytes, unit.signature_bytes)
    by_name = {d.name: d for d in result.documents}
    assert by_name["signed.pdf"].covered_by == (0,)
    assert by_name["extra.pdf"].covered_by == ()
    assert [d.name for d in result.uncovered_documents] == ["extra.pdf"]
    assert unit.covers == (result.documents.index(by_name["signed.pdf"]),)


def test_unsigned_text_beside_signed_part_is_reported() -> None:
    """Inline text outside a signature is not a document but is visibly uncovered."""
    raw = message(
        multipart("mixed", [text_part("unsigned note\n"), attachment("a.pdf", b"x")], "t")
    )
    result = analyze(raw, LIMITS)
    assert isinstance(result, Analysis)
    assert [(t.path, t.covered_by) for t in result.inline_texts] == [((1,), ())]
    assert [d.name for d in result.uncovered_documents] == ["a.pdf"]
    assert result.signed_units == ()

"""S/MIME (RFC 8551) made by `openssl cms -sign`: the reported bytes verify."""

from __future__ import annotations

import base64

from gateway.mime import Analysis, EntityAnalysis, MimeLimits, analyze, analyze_entity
from testkit.mime_samples import (
    CmsSigner,
    attachment,
    entity,
    message,
    multipart,
    pdf_bytes,
    text_part,
    to_crlf,
    with_headers,
)

LIMITS = MimeLimits()


def letter() -> bytes:
    return multipart(
        "mixed", [text_part("The circular is attached.\n"), attachment("circular.pdf", pdf_bytes(5000))],
        "smime-inner",
    )  # fmt: skip


def test_detached_multipart_signed(cms: CmsSigner) -> None:
    inner = letter()
    raw = with_headers(to_crlf(cms.sign(inner, detached=True, binary=True)))
    result = analyze(raw, LIMITS)
    assert isinstance(result, Analysis), result
    (unit,) = result.signed_units
    assert unit.kind == "smime-signed"
    assert unit.micalg == "sha-256"
    assert unit.signed_bytes == inner
    assert unit.signature_bytes[:1] == b"\x30"
    assert cms.verify_detached(unit.signed_bytes, unit.signature_bytes)
    (doc,) = result.documents
    assert doc.name == "circular.pdf" and doc.covered_by == (0,)
    assert result.uncovered_documents == ()

    at = raw.index(b"circular.pdf") + 200  # inside the attachment's base64
    flipped = raw[:at] + (b"A" if raw[at : at + 1] != b"A" else b"B") + raw[at + 1 :]
    tampered = analyze(flipped, LIMITS)
    assert isinstance(tampered, Analysis), tampered
    assert not cms.verify_detached(tampered.signed_units[0].signed_bytes, unit.signature_bytes)


def test_canonicalised_text_mode_signature(cms: CmsSigner) -> None:
    """A client hands openssl LF text; openssl signs (and emits) the CRLF form."""
    inner = letter()
    raw = with_headers(
        to_crlf(cms.sign(inner.replace(b"\r\n", b"\n"), detached=True, binary=False))
    )
    result = analyze(raw, LIMITS)
    assert isinstance(result, Analysis), result
    (unit,) = result.signed_units
    assert unit.signed_bytes == inner
    assert cms.verify_detached(unit.signed_bytes, unit.signature_bytes)


def test_x_pkcs7_signature_protocol(cms: CmsSigner) -> None:
    inner = letter()
    der = cms.sign(inner, detached=True, binary=True, der=True)
    signature = entity(
        [("Content-Type", 'application/x-pkcs7-signature; name="smime.p7s"'),
         ("Content-Transfer-Encoding", "base64"),
         ("Content-Disposition", 'attachment; filename="smime.p7s"')],
        base64.encodebytes(der).replace(b"\n", b"\r\n").rstrip(b"\r\n"),
    )  # fmt: skip
    params = '; protocol="application/x-pkcs7-signature"; micalg=SHA1'
    raw = message(multipart("signed", [inner, signature], "----=_NextPart_000_0001", params))
    result = analyze(raw, LIMITS)
    assert isinstance(result, Analysis), result
    (unit,) = result.signed_units
    assert unit.kind == "smime-signed"
    assert unit.signature_bytes == der
    assert cms.verify_detached(unit.signed_bytes, unit.signature_bytes)
    assert [d.name for d in result.documents] == ["circular.pdf"]


def test_opaque_signed_data(cms: CmsSigner) -> None:
    inner = letter()
    raw = with_headers(to_crlf(cms.sign(inner, detached=False, binary=True)))
    result = analyze(raw, LIMITS)
    assert isinstance(result, Analysis), result
    (unit,) = result.signed_units
    assert unit.kind == "smime-opaque"
    assert unit.path == () and unit.signed_bytes == b"" and unit.covers == ()
    assert result.documents == ()  # the p7m container itself is not a document

    content = cms.verify_opaque(unit.signature_bytes)
    assert content == inner
    nested = analyze_entity(content, LIMITS)
    assert isinstance(nested, EntityAnalysis), nested
    (doc,) = nested.documents
    assert doc.name == "circular.pdf" and doc.data == pdf_bytes(5000)
    assert nested.signed_units == ()


def test_opaque_signed_data_named_p7m_without_smime_type(cms: CmsSigner) -> None:
    der = cms.sign(letter(), detached=False, binary=True, der=True)
    part = entity(
        [("Content-Type", 'application/pkcs7-mime; name="smime.p7m"'),
         ("Content-Transfer-Encoding", "base64")],
        base64.encodebytes(der).replace(b"\n", b"\r\n"),
    )  # fmt: skip
    result = analyze(message(part), LIMITS)
    assert isinstance(result, Analysis), result
    assert [u.kind for u in result.signed_units] == ["smime-opaque"]
    assert result.signed_units[0].signature_bytes == der


def test_analyze_entity_applies_the_same_rules() -> None:
    rejected = analyze_entity(b"Content-Type: text/plain\n\nbare LF\n", LIMITS)
    assert not isinstance(rejected, EntityAnalysis)
    assert rejected.reason == "bare LF in message"

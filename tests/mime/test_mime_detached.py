"""Detached signatures beside documents: `name.ext` + `.sig` / `.asc` / `.p7s`."""

from __future__ import annotations

from gateway.mime import Analysis, MimeLimits, Rejection, analyze
from testkit.mime_samples import (
    CmsSigner,
    GpgSigner,
    attachment,
    entity,
    message,
    multipart,
    pdf_bytes,
    text_part,
)

LIMITS = MimeLimits()


def armored_part(name: str, armor: bytes) -> bytes:
    return entity(
        [("Content-Type", f'application/pgp-signature; name="{name}"'),
         ("Content-Disposition", f'attachment; filename="{name}"')],
        armor,
    )  # fmt: skip


def test_gpg_sig_asc_and_cms_p7s_beside_documents(gpg: GpgSigner, cms: CmsSigner) -> None:
    report, budget, plan = pdf_bytes(4000), pdf_bytes(9000), b"plan text\r\nline 2\r\n"
    raw = message(
        multipart("mixed", [
            text_part("Three signed files.\n"),
            attachment("report.pdf", report),
            attachment("report.pdf.sig", gpg.sign(report, armor=False), "application/octet-stream"),
            attachment("budget.xlsx", budget, "application/vnd.ms-excel"),
            armored_part("budget.xlsx.asc", gpg.sign(budget)),
            attachment("plan.txt", plan, "text/plain"),
            attachment("plan.txt.p7s", cms.sign(plan, detached=True, binary=True, der=True),
                       "application/pkcs7-signature"),
        ], "det")
    )  # fmt: skip
    result = analyze(raw, LIMITS)
    assert isinstance(result, Analysis), result
    assert [d.name for d in result.documents] == ["report.pdf", "budget.xlsx", "plan.txt"]
    assert [u.kind for u in result.signed_units] == [
        "openpgp-detached",
        "openpgp-detached",
        "cms-detached",
    ]
    for index, (unit, doc) in enumerate(zip(result.signed_units, result.documents, strict=True)):
        assert unit.path == doc.path
        assert unit.signed_bytes == doc.data
        assert unit.covers == (index,) and doc.covered_by == (index,)
    first, second, third = result.signed_units
    assert first.signed_bytes == report and first.signature_path == (3,)
    assert gpg.verify(first.signed_bytes, first.signature_bytes)
    assert gpg.verify(second.signed_bytes, second.signature_bytes)
    assert cms.verify_detached(third.signed_bytes, third.signature_bytes)
    assert result.uncovered_documents == ()
    # One changed byte in a document is one failed verification.
    assert not gpg.verify(first.signed_bytes[:-1] + b"X", first.signature_bytes)
    assert not cms.verify_detached(b"plan text\r\nline 3\r\n", third.signature_bytes)


def test_detached_partner_needs_a_sibling(gpg: GpgSigner) -> None:
    """A signature in another multipart does not cover the document."""
    doc = pdf_bytes(100)
    raw = message(
        multipart("mixed", [
            attachment("a.pdf", doc),
            multipart("mixed", [attachment("a.pdf.sig", gpg.sign(doc, armor=False),
                                           "application/octet-stream")], "deeper"),
        ], "outer")
    )  # fmt: skip
    result = analyze(raw, LIMITS)
    assert isinstance(result, Analysis), result
    assert result.signed_units == ()
    assert sorted(d.name for d in result.uncovered_documents) == ["a.pdf", "a.pdf.sig"]


def test_two_documents_with_the_signed_name_are_ambiguous() -> None:
    raw = message(
        multipart("mixed", [
            attachment("a.pdf", b"one"), attachment("a.pdf", b"two"),
            attachment("a.pdf.sig", b"sig", "application/octet-stream"),
        ], "amb")
    )  # fmt: skip
    result = analyze(raw, LIMITS)
    assert isinstance(result, Rejection)
    assert (result.code, result.enhanced) == (550, "5.6.0")

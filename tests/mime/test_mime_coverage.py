"""Which content parts the signatures cover, as the cover lists them: message text
beside a detached signature is outside it, everything under a multipart/signed is
inside, signature parts are no content, and a one-part message is part "1"."""

from __future__ import annotations

from gateway.mime import Analysis, MimeLimits, analyze
from gateway.mime.coverage import content_parts
from testkit.mime_samples import attachment, entity, message, multipart, pdf_bytes, text_part

LIMITS = MimeLimits()
ARMOR = b"-----BEGIN PGP SIGNATURE-----\r\n\r\nAAAA\r\n-----END PGP SIGNATURE-----\r\n"


def parts_of(raw: bytes) -> list[tuple[str, str, str, bool]]:
    result = analyze(raw, LIMITS)
    assert isinstance(result, Analysis), result
    found = content_parts(result.signed_units, result.documents, result.inline_texts)
    return [(p.section, p.kind, p.name, p.covered) for p in found]


def test_text_beside_a_detached_signature_is_not_covered() -> None:
    raw = message(
        multipart("mixed", [
            text_part("See the attached memo.\n"),
            attachment("memo.pdf", pdf_bytes(500)),
            attachment("memo.pdf.asc", ARMOR, "application/pgp-signature"),
        ], "d")
    )  # fmt: skip
    assert parts_of(raw) == [("1", "text", "", False), ("2", "document", "memo.pdf", True)]


def test_multipart_signed_covers_its_subtree_only() -> None:
    inner = multipart("mixed", [text_part("Signed text.\n"), attachment("a.pdf", pdf_bytes(300))],
                      "inner")  # fmt: skip
    signature = entity([("Content-Type", "application/pgp-signature")], ARMOR)
    signed = multipart("signed", [inner, signature], "s",
                       '; protocol="application/pgp-signature"; micalg=pgp-sha256')  # fmt: skip
    raw = message(multipart("mixed", [text_part("Unsigned note.\n"), signed], "o"))
    assert parts_of(raw) == [
        ("1", "text", "", False),
        ("2.1.1", "text", "", True),
        ("2.1.2", "document", "a.pdf", True),
    ]


def test_a_one_part_message_is_part_one() -> None:
    assert parts_of(message(text_part("Only text.\n"))) == [("1", "text", "", False)]

"""The structure scanner: exact offsets, parameters, defaults, documents."""

from __future__ import annotations

from gateway.mime import Analysis, MimeLimits, analyze, format_path
from testkit.mime_samples import attachment, entity, message, multipart, pdf_bytes, text_part

LIMITS = MimeLimits()


def analysed(raw: bytes) -> Analysis:
    result = analyze(raw, LIMITS)
    assert isinstance(result, Analysis), result
    return result


def test_offsets_are_exact() -> None:
    first, second = text_part("one\n"), attachment("b.pdf", b"%PDF")
    raw = message(multipart("mixed", [first, second], "xyz"))
    result = analysed(raw)
    root = result.root
    assert (root.start, root.end) == (0, len(raw))
    assert raw[root.body_start :].startswith(b"--xyz\r\n")
    one, two = root.children
    assert one.entity(raw) == first and two.entity(raw) == second
    assert raw[one.end : one.end + 7] == b"\r\n--xyz"
    assert one.body(raw) == b"one\r\n"
    assert [format_path(p.path) for p in root.walk()] == ["0", "1", "2"]


def test_rfc2231_and_rfc2047_file_names() -> None:
    continued = entity(
        [("Content-Type", "application/pdf"),
         ("Content-Disposition", "attachment;\r\n filename*0*=utf-8''%D8%AA%D9%82%D8%B1%D9%8A;\r\n"
                                 " filename*1*=%D8%B1.pdf; filename*2=\" final\"")],
        b"x",
    )  # fmt: skip
    encoded = entity(
        [("Content-Type", 'application/pdf; name="=?utf-8?b?2K7Yt9in2Kg=?=.pdf"'),
         ("Content-Disposition", "attachment")],
        b"y",
    )  # fmt: skip
    starred = entity(
        [("Content-Type", "application/pdf"),
         ("Content-Disposition", "attachment; filename=plain.pdf; filename*=iso-8859-1'en'caf%E9.pdf")],
        b"z",
    )  # fmt: skip
    result = analysed(message(multipart("mixed", [continued, encoded, starred], "names")))
    assert [d.name for d in result.documents] == ["تقرير.pdf final", "خطاب.pdf", "café.pdf"]


def test_broken_continuation_is_malformed() -> None:
    part = entity([("Content-Disposition", "attachment; filename*0=a; filename*2=b")], b"x")
    result = analyze(message(multipart("mixed", [part], "gap")), LIMITS)
    assert not isinstance(result, Analysis) and result.enhanced == "5.6.0"


def test_lines_that_only_look_like_delimiters() -> None:
    body = (
        b"--bndX preamble line\r\n--bnd\r\n"
        b"Content-Type: text/plain\r\n\r\n--bndary is not a delimiter\r\n--bnd--x neither\r\n"
        b"--bnd--\r\n--bnd\r\nepilogue\r\n"
    )
    result = analysed(message(entity([("Content-Type", "multipart/mixed; boundary=bnd")], body)))
    (only,) = result.root.children
    assert only.body(result.raw) == b"--bndary is not a delimiter\r\n--bnd--x neither"


def test_parts_without_headers_and_digest_default() -> None:
    digest_item = b"\r\nFrom: a@x.example\r\nSubject: inner\r\n\r\nhi\r\n"
    raw = message(multipart("digest", [digest_item], "dg"))
    result = analysed(raw)
    (item,) = result.root.children
    assert item.headers == ()
    assert item.content_type == "message/rfc822"
    assert item.body(raw) == digest_item[2:]
    (doc,) = result.documents  # an attached message is content like any other
    assert doc.name == "part-1" and doc.content_type == "message/rfc822"


def test_header_only_part_and_empty_part() -> None:
    body = b"--e\r\nContent-Type: text/plain\r\n--e\r\n\r\n--e--\r\n"
    result = analysed(message(entity([("Content-Type", "multipart/mixed; boundary=e")], body)))
    first, second = result.root.children
    assert first.body_start == first.end and first.content_type == "text/plain"
    assert second.start == second.end and second.headers == ()


def test_what_counts_as_a_document() -> None:
    parts = [
        text_part("body\n"),
        text_part("<p>body</p>\n", "html"),
        entity([("Content-Type", "text/plain"), ("Content-Disposition", "attachment")], b"notes"),
        entity([("Content-Type", "image/png"), ("Content-Disposition", "inline")], b"\x89PNG"),
        entity([("Content-Type", "text/csv; name=t.csv")], b"a,b"),
        entity([("Content-Type", "application/pgp-signature")], b"stray"),
    ]
    result = analysed(message(multipart("mixed", parts, "docs")))
    # A stray signature-typed part that signs nothing is content like any other:
    # it needs a signature itself (it could be anything under that label).
    assert [(d.name, d.content_type) for d in result.documents] == [
        ("part-3", "text/plain"), ("part-4", "image/png"), ("t.csv", "text/csv"),
        ("part-6", "application/pgp-signature"),
    ]  # fmt: skip
    assert [t.content_type for t in result.inline_texts] == ["text/plain", "text/html"]
    assert all(d.covered_by == () for d in result.documents)


def test_quoted_printable_document() -> None:
    part = entity(
        [("Content-Type", "text/csv; name=q.csv"), ("Content-Transfer-Encoding", "quoted-printable")],
        b"caf=C3=A9;1=\r\n2\r\nend=",
    )  # fmt: skip
    (doc,) = analysed(message(multipart("mixed", [part], "qp"))).documents
    assert doc.data == "café;12\r\nend".encode()


def test_documents_carry_sha256() -> None:
    import hashlib

    data = pdf_bytes(777)
    (doc,) = analysed(message(multipart("mixed", [attachment("s.pdf", data)], "h"))).documents
    assert doc.sha256 == hashlib.sha256(data).hexdigest()


def test_control_character_in_file_name() -> None:
    part = entity([("Content-Type", 'application/pdf; name="a\\\x07.pdf"')], b"x")
    result = analyze(message(multipart("mixed", [part], "cc")), LIMITS)
    assert not isinstance(result, Analysis) and result.enhanced == "5.6.0"


def rejection_reason(raw: bytes) -> str:
    result = analyze(raw, LIMITS)
    assert not isinstance(result, Analysis)
    return result.reason


def test_multipart_signed_needs_protocol_and_two_parts() -> None:
    pgp = '; protocol="application/pgp-signature"'
    one = message(multipart("signed", [text_part("x")], "s1", pgp))
    assert rejection_reason(one) == "multipart/signed without two parts in part 0"
    bare = message(multipart("signed", [text_part("x"), text_part("y")], "s2"))
    assert rejection_reason(bare) == "multipart/signed without protocol in part 0"
    mismatch = message(multipart("signed", [text_part("x"), text_part("y")], "s3", pgp))
    assert rejection_reason(mismatch) == "signature part does not match protocol in part 0"


def test_unknown_signature_protocol_covers_nothing() -> None:
    signed = multipart("signed", [attachment("a.pdf", b"x"), entity([("Content-Type", "application/x-other")], b"s")],
                       "s4", '; protocol="application/x-other"')  # fmt: skip
    result = analysed(message(signed))
    assert result.signed_units == ()
    # Neither part is a checked signature: both are uncovered content.
    assert [d.name for d in result.uncovered_documents] == ["a.pdf", "part-2"]

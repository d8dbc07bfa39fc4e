"""Every refusal the analysis can give, with its reply code (docs/CONTRACT.md §5)."""

from __future__ import annotations

import pytest

from gateway.mime import Analysis, MimeLimits, Rejection, analyze
from testkit.mime_samples import attachment, default_headers, entity, message, multipart, text_part

LIMITS = MimeLimits()
MALFORMED = (550, "5.6.0")
TOO_BIG = (552, "5.3.4")
REFUSED = (550, "5.7.1")


def simple(**headers: str) -> bytes:
    return message(text_part("hello\n"), default_headers(**headers))


def reject(raw: bytes, limits: MimeLimits = LIMITS) -> Rejection:
    result = analyze(raw, limits)
    assert isinstance(result, Rejection), result
    assert result.reason.isascii() and len(result.reason) < 80
    assert result.reply == f"{result.code} {result.enhanced} {result.reason}"
    return result


def nested(depth: int) -> bytes:
    inner = text_part("deep\n")
    for level in range(depth):
        inner = multipart("mixed", [inner], f"lvl{level}x")
    return message(inner)


def test_valid_simple_message_is_accepted() -> None:
    assert isinstance(analyze(simple(), LIMITS), Analysis)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (simple().replace(b"hello\r\n", b"hel\rlo\r\n"), "bare CR in message"),
        (simple().replace(b"hello\r\n", b"hel\nlo\r\n"), "bare LF in message"),
        (simple().replace(b"hello\r\n", b"hel\x00lo\r\n"), "NUL in message"),
        (simple().replace(b"\r\n", b"\n"), "bare LF in message"),
        (simple() + b"\r", "bare CR in message"),
    ],
)
def test_line_ending_and_nul_rejections(raw: bytes, reason: str) -> None:
    rejection = reject(raw)
    assert (rejection.code, rejection.enhanced, rejection.reason) == (*MALFORMED, reason)


def test_oversize() -> None:
    raw = simple()
    assert isinstance(analyze(raw, MimeLimits(max_message_bytes=len(raw))), Analysis)
    rejection = reject(raw, MimeLimits(max_message_bytes=len(raw) - 1))
    assert (rejection.code, rejection.enhanced) == TOO_BIG


def test_too_many_parts() -> None:
    parts = [attachment(f"f{i}.pdf", b"x") for i in range(99)]
    ok = message(multipart("mixed", parts, "many"))  # 99 parts + the top level = 100
    assert isinstance(analyze(ok, LIMITS), Analysis)
    rejection = reject(message(multipart("mixed", [*parts, attachment("g.pdf", b"y")], "many")))
    assert (rejection.code, rejection.enhanced, rejection.reason) == (
        *TOO_BIG,
        "too many MIME parts",
    )


def test_too_deep() -> None:
    assert isinstance(analyze(nested(10), LIMITS), Analysis)
    rejection = reject(nested(11))
    assert (rejection.code, rejection.enhanced, rejection.reason) == (
        *TOO_BIG,
        "MIME nesting too deep",
    )


def test_limits_are_parameters() -> None:
    assert isinstance(reject(nested(3), MimeLimits(max_depth=2)), Rejection)
    assert isinstance(reject(nested(3), MimeLimits(max_parts=3)), Rejection)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (
            b"--b\r\nContent-Type: text/plain\r\n\r\nx\r\n--b\r\n\r\ny\r\n",
            "unterminated multipart in part 0",
        ),
        (b"--b\r\nContent-Type: text/plain\r\n\r\nx\r\n", "unterminated multipart in part 0"),
        (b"no delimiter at all\r\n", "multipart boundary not found in part 0"),
        (b"--b--\r\n", "multipart without body parts in part 0"),
        (b"--b\r\n--b--\r\n", "empty body part in part 0"),
        (b"--b\r\n\r\nx\r\n--b", "unterminated multipart in part 0"),
    ],
)
def test_broken_multipart(body: bytes, reason: str) -> None:
    raw = message(entity([("Content-Type", "multipart/mixed; boundary=b")], body))
    rejection = reject(raw)
    assert (rejection.code, rejection.enhanced, rejection.reason) == (*MALFORMED, reason)


def test_unterminated_inner_multipart() -> None:
    inner = entity([("Content-Type", 'multipart/mixed; boundary="in"')], b"--in\r\n\r\ntext")
    rejection = reject(message(multipart("mixed", [inner, text_part("x")], "out")))
    assert (rejection.code, rejection.enhanced, rejection.reason) == (
        *MALFORMED,
        "unterminated multipart in part 1",
    )


@pytest.mark.parametrize(
    ("content_type", "reason"),
    [
        ("multipart/mixed", "multipart without boundary in part 0"),
        ('multipart/mixed; boundary=""', "multipart without boundary in part 0"),
        ('multipart/mixed; boundary="' + "x" * 71 + '"', "bad multipart boundary in part 0"),
        ("multipart/mixed; boundary=b; boundary=c", "duplicate Content-Type parameter"),
        ("text", "bad Content-Type"),
        ('text/plain; name="unterminated', "unterminated quoted string in header"),
    ],
)
def test_bad_content_type(content_type: str, reason: str) -> None:
    raw = message(entity([("Content-Type", content_type)], b"--b\r\n\r\nx\r\n--b--\r\n"))
    rejection = reject(raw)
    assert (rejection.code, rejection.enhanced, rejection.reason) == (*MALFORMED, reason)


def test_reused_nested_boundary() -> None:
    inner = multipart("mixed", [text_part("x")], "same")
    rejection = reject(message(multipart("mixed", [inner], "same")))
    assert rejection.reason == "nested boundary reused in part 1"


@pytest.mark.parametrize(
    "raw",
    [
        b"From ali@x Mon Sep  1 00:00:00 2025\r\n" + simple(),
        simple().replace(b"Subject:", b"Subject :"),
        simple().replace(b"Subject:", b"Sub ject:"),
        b" folded-first: x\r\n" + simple(),
        simple().replace(b"Subject: Budget letter", b"Subject: " + b"x" * 990),
    ],
)
def test_bad_header_syntax(raw: bytes) -> None:
    assert (reject(raw).code, reject(raw).enhanced) == MALFORMED


def test_header_limits() -> None:
    many = [*default_headers(), *[("X-Extra", str(i)) for i in range(600)]]
    assert (
        reject(message(text_part("x"), many)).code,
        reject(message(text_part("x"), many)).enhanced,
    ) == TOO_BIG
    big = [*default_headers(), *[("X-Extra", "y" * 900) for _ in range(80)]]
    assert reject(message(text_part("x"), big)).reason == "header section too large"


def test_undecodable_base64_document() -> None:
    broken = entity(
        [("Content-Type", "application/pdf"), ("Content-Disposition", "attachment; filename=a.pdf"),
         ("Content-Transfer-Encoding", "base64")],
        b"JVBERi0xLjcK!!notbase64",
    )  # fmt: skip
    rejection = reject(message(multipart("mixed", [broken], "b64")))
    assert (rejection.code, rejection.enhanced, rejection.reason) == (
        *MALFORMED,
        "undecodable base64 in part 1",
    )


def test_bad_quoted_printable_and_unknown_encoding() -> None:
    qp = entity(
        [("Content-Type", "text/csv; name=a.csv"), ("Content-Transfer-Encoding", "quoted-printable")],
        b"a=ZZb\r\n",
    )  # fmt: skip
    assert reject(message(qp)).reason == "undecodable quoted-printable in part 0"
    odd = entity(
        [("Content-Type", "text/csv; name=a.csv"), ("Content-Transfer-Encoding", "x-uuencode")],
        b"x",
    )
    assert reject(message(odd)).reason == "unknown transfer encoding in part 0"


def test_two_from_addresses() -> None:
    rejection = reject(simple(From="ali.hassan@moh.gov.example, other@moh.gov.example"))
    assert (rejection.code, rejection.enhanced) == REFUSED


def test_two_from_headers() -> None:
    raw = simple()
    rejection = reject(b"From: other@moh.gov.example\r\n" + raw)
    assert (rejection.code, rejection.enhanced, rejection.reason) == (
        *MALFORMED,
        "more than one From header",
    )


def test_missing_from() -> None:
    raw = message(text_part("x"), [h for h in default_headers() if h[0] != "From"])
    assert reject(raw).reason == "no From header"


@pytest.mark.parametrize(
    "from_value",
    [
        '"boss@moh.gov.example" <evil@x.example>',
        "boss@moh.gov.example <evil@x.example>",
        '"Boss (boss@moh.gov.example)" <evil@x.example>',
        "=?utf-8?q?boss=40moh=2Egov=2Eexample?= <evil@x.example>",
        '"boss＠moh.gov.example" <evil@x.example>',
        "evil@x.example (boss@moh.gov.example)",
    ],
)
def test_display_name_forgery(from_value: str) -> None:
    rejection = reject(simple(From=from_value))
    assert (rejection.code, rejection.enhanced) == REFUSED
    assert rejection.reason == "display name in From shows another address"


def test_display_name_with_the_same_address_is_fine() -> None:
    result = analyze(
        simple(From='"Ali (ALI.HASSAN@moh.gov.example)" <Ali.Hassan@MOH.gov.example>'), LIMITS
    )
    assert isinstance(result, Analysis), result
    assert result.from_address == "ali.hassan@moh.gov.example"


def test_sender_forgery_and_shape() -> None:
    assert reject(simple(Sender='"boss@moh.gov.example" <evil@x.example>')).enhanced == "5.7.1"
    assert reject(simple(Sender="a@x.example, b@x.example")).enhanced == "5.6.0"


def test_two_employee_codes() -> None:
    raw = b"Barid-Employee-Code: MOH-000043-X\r\n" + simple()
    rejection = reject(raw)
    assert (rejection.code, rejection.enhanced) == MALFORMED
    assert rejection.reason == "more than one Barid-Employee-Code header"


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("Barid-Classification", "topsecret"),
        ("Barid-Classification", ""),
        ("SIO-Label", 'marking="BANANA"'),
        ("SIO-Label", "fgcolor=black; bgcolor=red"),
        ("SIO-Label", 'marking="TOP SECRET"'),
        ("Sensitivity", "Extremely-Private"),
    ],
)
def test_unknown_classification(header: str, value: str) -> None:
    rejection = reject(message(text_part("x"), [*default_headers(), (header, value)]))
    assert (rejection.code, rejection.enhanced) == REFUSED
    assert "classification" in rejection.reason


def test_boundary_that_prefixes_another_is_refused() -> None:
    inner = multipart("mixed", [text_part("x")], "level-10")
    rejection = reject(message(multipart("mixed", [inner], "level-1")))
    assert (rejection.code, rejection.enhanced) == MALFORMED

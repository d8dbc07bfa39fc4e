"""Top-level header facts and the three classification header forms."""

from __future__ import annotations

import base64

import pytest

from gateway.mime import Analysis, MimeLimits, analyze
from policies.directory import Clearance
from testkit.mime_samples import default_headers, message, text_part

LIMITS = MimeLimits()


def analysed(extra: list[tuple[str, str]], **overrides: str) -> Analysis:
    result = analyze(message(text_part("x"), [*default_headers(**overrides), *extra]), LIMITS)
    assert isinstance(result, Analysis), result
    return result


def test_header_facts() -> None:
    result = analysed(
        [("Sender", "Secretary <Office@MOH.gov.example>")],
        From='=?utf-8?b?2LnZhNmKINit2LPZhg==?= <Ali.Hassan@MOH.gov.example>',
        Subject="=?utf-8?q?Budget_=D9=85=D9=8A=D8=B2=D8=A7=D9=86=D9=8A=D8=A9?=",
    )  # fmt: skip
    assert result.from_address == "ali.hassan@moh.gov.example"
    assert result.from_display_name == "علي حسن"
    assert result.sender_address == "office@moh.gov.example"
    assert result.subject == "Budget ميزانية"
    assert result.message_id == "<m1@moh.gov.example>"
    assert result.employee_code == "MOH-000042-K"
    assert result.classification is Clearance.INTERNAL
    assert result.classification_sources == () and result.classification_note is None
    assert [f.name for f in result.headers][:2] == ["From", "To"]
    field = result.headers[0]
    assert result.raw[field.start : field.end].startswith(b"From: ")


def test_folded_header_and_plain_address() -> None:
    raw = message(text_part("x"), default_headers()).replace(
        b"Subject: Budget letter", b"Subject: Budget\r\n letter\r\n\tpart two"
    )
    result = analyze(
        raw.replace(b'"Ali Hassan" <ali.hassan@moh.gov.example>', b"ali.hassan@moh.gov.example"),
        LIMITS,
    )
    assert isinstance(result, Analysis), result
    assert result.subject == "Budget letter\tpart two"
    assert result.from_display_name == ""
    assert result.sender_address is None


def test_missing_code_and_message_id() -> None:
    headers = [h for h in default_headers() if h[0] not in {"Barid-Employee-Code", "Message-ID"}]
    result = analyze(message(text_part("x"), headers), LIMITS)
    assert isinstance(result, Analysis)
    assert result.employee_code is None and result.message_id is None


@pytest.mark.parametrize(
    ("header", "value", "level"),
    [
        ("Barid-Classification", "public", Clearance.PUBLIC),
        ("Barid-Classification", " Confidential ", Clearance.CONFIDENTIAL),
        ("Barid-Classification", "SECRET", Clearance.SECRET),
        ("SIO-Label", 'marking="UNCLASSIFIED"', Clearance.PUBLIC),
        ("SIO-Label", 'marking="FOR OFFICIAL USE ONLY"; fgcolor=black', Clearance.INTERNAL),
        ("SIO-Label", 'marking="OFFICIAL-SENSITIVE"', Clearance.CONFIDENTIAL),
        (
            "SIO-Label",
            'marking="SECRET"; fgcolor=black; bgcolor=red;\r\n type=":ess"; label=MQYGASkCAQQ=',
            Clearance.SECRET,
        ),
        ("SIO-Label", 'type=":ess"; label=MQYGASkCAQM=', Clearance.CONFIDENTIAL),
        ("SIO-Label", 'marking="RESTRICTED"; type=":x411"; label=MQA=', Clearance.INTERNAL),
        ("Sensitivity", "Normal", Clearance.INTERNAL),
        ("Sensitivity", "Personal", Clearance.INTERNAL),
        ("Sensitivity", "Private", Clearance.CONFIDENTIAL),
        ("Sensitivity", "Company-Confidential", Clearance.CONFIDENTIAL),
    ],
)
def test_classification_forms(header: str, value: str, level: Clearance) -> None:
    result = analyze(message(text_part("x"), [*default_headers(), (header, value)]), LIMITS)
    assert isinstance(result, Analysis), result
    assert result.classification is level
    (source,) = result.classification_sources
    assert source.header == header and source.level is level
    assert result.classification_note is None


def test_ess_label_bytes() -> None:
    """The ESS label above is SET { OID 1.1, INTEGER 4 } (RFC 2634 §5.4)."""
    assert base64.b64decode("MQYGASkCAQQ=") == bytes([0x31, 6, 0x06, 1, 0x29, 0x02, 1, 4])


def test_ess_top_secret_and_unknown_values_are_refused() -> None:
    for level in (5, 9):
        label = base64.b64encode(bytes([0x31, 6, 0x06, 1, 0x29, 0x02, 1, level])).decode()
        result = analyze(
            message(
                text_part("x"), [*default_headers(), ("SIO-Label", f'type=":ess"; label={label}')]
            ),
            LIMITS,
        )
        assert not isinstance(result, Analysis)
        assert result.enhanced == "5.7.1"


def test_disagreeing_headers_take_the_highest() -> None:
    result = analysed([
        ("Barid-Classification", "internal"),
        ("Sensitivity", "Company-Confidential"),
        ("SIO-Label", 'marking="SECRET"'),
    ])  # fmt: skip
    assert result.classification is Clearance.SECRET
    assert [s.level for s in result.classification_sources] == [
        Clearance.INTERNAL, Clearance.SECRET, Clearance.CONFIDENTIAL,
    ]  # fmt: skip
    assert result.classification_note is not None
    assert "highest, secret" in result.classification_note


def test_agreeing_headers_have_no_note() -> None:
    result = analysed([("Barid-Classification", "confidential"), ("Sensitivity", "Private")])
    assert result.classification is Clearance.CONFIDENTIAL
    assert result.classification_note is None

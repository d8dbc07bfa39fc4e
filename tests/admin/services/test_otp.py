"""keys/otp.py against RFC 6238's test vectors and an independent implementation (pyotp)."""

from __future__ import annotations

import base64
from urllib.parse import parse_qs, urlsplit

import pyotp
import pytest

from keys import otp

RFC_SECRET = b"12345678901234567890"  # RFC 6238 Appendix B, SHA-1


@pytest.mark.parametrize(
    ("when", "code"),
    [(59, "287082"), (1111111109, "081804"), (1234567890, "005924"), (2000000000, "279037")],
)
def test_rfc_6238_vectors(when: int, code: str) -> None:
    # The appendix lists 8-digit codes; the 6-digit code is their last six digits.
    assert otp.code_at(RFC_SECRET, when) == code
    assert otp.matching_step(RFC_SECRET, code, when) == when // 30


def test_uri_and_codes_agree_with_pyotp() -> None:
    secret = otp.new_secret()
    uri = otp.provisioning_uri(secret, "ali@mof.example")
    parsed = pyotp.parse_uri(uri)
    assert isinstance(parsed, pyotp.TOTP)
    assert parsed.issuer == "Barid" and parsed.name == "ali@mof.example"
    query = parse_qs(urlsplit(uri).query)
    assert base64.b32decode(query["secret"][0] + "=" * (-len(query["secret"][0]) % 8)) == secret
    for when in (1_780_000_000, 1_780_000_029, 1_780_000_030, 1_900_000_017):
        assert otp.code_at(secret, when) == parsed.at(when)


def test_drift_window_is_one_step_either_side() -> None:
    secret = otp.new_secret()
    now = 1_780_000_015
    step = now // 30
    for delta, accepted in [(-60, False), (-30, True), (0, True), (30, True), (60, False)]:
        code = pyotp.TOTP(base64.b32encode(secret).decode()).at(now + delta)
        found = otp.matching_step(secret, code, now)
        if accepted:
            assert found == step + delta // 30
        elif found is not None:  # a 1-in-a-million collision with a nearby step's code
            assert found != step + delta // 30


def test_arabic_indic_digits_and_spaces_are_forgiven() -> None:
    assert otp.matching_step(RFC_SECRET, "٢٨٧ ٠٨٢", 59) == 1  # "287 082"
    assert otp.matching_step(RFC_SECRET, "۲۸۷۰۸۲", 59) == 1


@pytest.mark.parametrize("code", ["", "12345", "1234567", "12345a", "²⁸⁷⁰⁸²", "２８７０８２"])
def test_malformed_codes_match_nothing(code: str) -> None:
    assert otp.matching_step(RFC_SECRET, code, 59) is None


def test_recovery_codes_are_distinct_and_forgive_typing() -> None:
    codes = otp.new_recovery_codes()
    assert len(set(codes)) == 10
    for code in codes:
        assert len(code) == 19 and code.count("-") == 3
        assert otp.normalize_recovery_code(f" {code.upper().replace('-', ' ')} ") == code.replace(
            "-", ""
        )
    assert otp.normalize_recovery_code("123456") is None
    assert otp.normalize_recovery_code("0000-1111-8888-9999") is None

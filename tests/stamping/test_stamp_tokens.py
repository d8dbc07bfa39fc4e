"""Verification tokens: round trip, tamper detection, key rotation, QR fit, the documented example."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from gateway.stamping.qr import MAX_QR_VERSION, qr_version
from keys.gateway_keys import (
    RETIRED_SIGNING_DIR,
    SIGNING_KEY_FILE,
    ensure_gateway_keys,
    key_id,
    load_gateway_keys,
)
from keys.tokens import (
    DIGEST_BYTES,
    MAX_AGENCY_CHARS,
    MAX_TOKEN_CHARS,
    MAX_TOKEN_DIGESTS,
    TokenContents,
    TokenError,
    TokenProblem,
    decode_token_bytes,
    decode_token_unverified,
    encode_token_bytes,
    issue_token,
    rest_digest,
    verify_token,
)

WHEN = dt.datetime(2025, 3, 1, 10, 15, 30, tzinfo=dt.UTC)
LONGEST_AGENCY = "A" * 16 + "-BBBBBBBBBBBBBBBB" * 3
DOCS = Path(__file__).resolve().parents[2] / "docs" / "TOKENS.md"


def digests(n: int) -> list[str]:
    return [hashlib.sha256(f"document {i}".encode()).hexdigest() for i in range(n)]


@pytest.fixture(scope="module")
def signer() -> tuple[ed25519.Ed25519PrivateKey, str]:
    key = ed25519.Ed25519PrivateKey.generate()
    return key, key_id(key.public_key())


def make(
    signer: tuple[ed25519.Ed25519PrivateKey, str],
    n_docs: int = 2,
    agency: str = "MOH-PLN",
    serial: int = 42,
) -> str:
    key, kid = signer
    return issue_token(
        key, kid, agency=agency, year=2025, serial=serial, issued_at=WHEN,
        document_sha256=digests(n_docs),
    )  # fmt: skip


def keyring(signer: tuple[ed25519.Ed25519PrivateKey, str]) -> dict[str, ed25519.Ed25519PublicKey]:
    return {signer[1]: signer[0].public_key()}


def test_round_trip(signer: tuple[ed25519.Ed25519PrivateKey, str]) -> None:
    token = make(signer, n_docs=3)
    result = verify_token(token, keyring(signer))
    assert isinstance(result, TokenContents), result
    assert result.registry_parts == ("MOH-PLN", 2025, 42)
    assert result.key_id == signer[1]
    assert result.issued_at == WHEN
    assert result.document_count == 3
    assert result.covers_documents(digests(3))
    assert all(result.covers_document(d) for d in digests(3))
    assert not result.covers_document(digests(4)[3])
    assert not result.covers_documents(digests(3)[::-1])
    assert re.fullmatch(r"[A-Z2-7]+", token)
    assert decode_token_unverified(token) == result


def test_token_is_case_insensitive(signer: tuple[ed25519.Ed25519PrivateKey, str]) -> None:
    token = make(signer)
    assert isinstance(verify_token(token.lower(), keyring(signer)), TokenContents)


def test_fractional_seconds_are_dropped(signer: tuple[ed25519.Ed25519PrivateKey, str]) -> None:
    key, kid = signer
    token = issue_token(
        key, kid, agency="MOH", year=2025, serial=1,
        issued_at=WHEN.replace(microsecond=999_999), document_sha256=[],
    )  # fmt: skip
    result = verify_token(token, keyring(signer))
    assert isinstance(result, TokenContents) and result.issued_at == WHEN
    assert result.document_count == 0 and result.document_digests == ()


def test_every_character_change_fails(signer: tuple[ed25519.Ed25519PrivateKey, str]) -> None:
    token = make(signer)
    keys = keyring(signer)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
    for i, ch in enumerate(token):
        # Two substitutes per position: the next alphabet letter and a distant one.
        for shift in (1, 17):
            other = alphabet[(alphabet.index(ch) + shift) % 32]
            forged = token[:i] + other + token[i + 1 :]
            result = verify_token(forged, keys)
            assert isinstance(result, TokenError), (i, other)
            assert result.message.startswith("forged or damaged")
    for forged in (token[:-1], token + "A", token[1:], token + "=", " " + token, token + "1"):
        assert isinstance(verify_token(forged, keys), TokenError)


def test_every_bit_flip_fails(signer: tuple[ed25519.Ed25519PrivateKey, str]) -> None:
    token = make(signer)
    raw = decode_token_bytes(token)
    assert isinstance(raw, bytes)
    keys = keyring(signer)
    for i in range(len(raw)):
        for bit in range(8):
            forged = raw[:i] + bytes((raw[i] ^ (1 << bit),)) + raw[i + 1 :]
            assert isinstance(verify_token(encode_token_bytes(forged), keys), TokenError), (i, bit)


def test_problems_are_named(signer: tuple[ed25519.Ed25519PrivateKey, str]) -> None:
    token = make(signer)
    raw = decode_token_bytes(token)
    assert isinstance(raw, bytes)
    other = ed25519.Ed25519PrivateKey.generate()

    def problem(text: str, keys: dict[str, ed25519.Ed25519PublicKey]) -> TokenProblem:
        result = verify_token(text, keys)
        assert isinstance(result, TokenError)
        return result.problem

    assert problem("not a token!", keyring(signer)) is TokenProblem.MALFORMED
    assert problem("", keyring(signer)) is TokenProblem.MALFORMED
    assert problem("A" * (MAX_TOKEN_CHARS + 8), keyring(signer)) is TokenProblem.MALFORMED
    assert problem(token, {}) is TokenProblem.UNKNOWN_KEY
    assert problem(token, {signer[1]: other.public_key()}) is TokenProblem.BAD_SIGNATURE
    v2 = encode_token_bytes(b"\x02" + raw[1:])
    assert problem(v2, keyring(signer)) is TokenProblem.UNSUPPORTED_VERSION
    # A non-canonical spelling (unused low bits of the last character set) is refused.
    last = token[-1]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
    sloppy = token[:-1] + alphabet[alphabet.index(last) | 1]
    assert sloppy != token
    assert problem(sloppy, keyring(signer)) is TokenProblem.MALFORMED


def test_unverified_decode_ignores_the_signature(
    signer: tuple[ed25519.Ed25519PrivateKey, str],
) -> None:
    raw = decode_token_bytes(make(signer))
    assert isinstance(raw, bytes)
    broken = encode_token_bytes(raw[:-1] + bytes((raw[-1] ^ 1,)))
    contents = decode_token_unverified(broken)
    assert isinstance(contents, TokenContents) and contents.serial == 42
    assert isinstance(verify_token(broken, keyring(signer)), TokenError)


def test_more_documents_than_slots(signer: tuple[ed25519.Ed25519PrivateKey, str]) -> None:
    n = MAX_TOKEN_DIGESTS + 5
    token = make(signer, n_docs=n)
    result = verify_token(token, keyring(signer))
    assert isinstance(result, TokenContents)
    assert result.document_count == n
    assert len(result.document_digests) == MAX_TOKEN_DIGESTS
    head = MAX_TOKEN_DIGESTS - 1
    assert all(result.covers_document(d) for d in digests(n)[:head])
    assert not any(result.covers_document(d) for d in digests(n)[head:])
    rest = [bytes.fromhex(d) for d in digests(n)[head:]]
    assert result.document_digests[-1] == rest_digest(rest)
    assert result.covers_documents(digests(n))
    changed = digests(n)
    changed[-1] = hashlib.sha256(b"swapped").hexdigest()
    assert not result.covers_documents(changed)


def test_issue_refuses_bad_parts(signer: tuple[ed25519.Ed25519PrivateKey, str]) -> None:
    key, kid = signer
    good = {"agency": "MOH", "year": 2025, "serial": 1, "issued_at": WHEN, "document_sha256": []}
    for change in (
        {"agency": "moh"},
        {"agency": "A" * 70},
        {"year": 1999},
        {"serial": 0},
        {"serial": 2**32},
        {"issued_at": WHEN.replace(tzinfo=None)},
        {"document_sha256": ["abcd"]},
        {"document_sha256": digests(1) * 256},
    ):
        with pytest.raises(ValueError):
            issue_token(key, kid, **{**good, **change})  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        issue_token(key, "xyz", **good)  # type: ignore[arg-type]


def test_retired_key_still_verifies_after_rotation(keys_dir_factory: Callable[[str], Path]) -> None:
    directory = keys_dir_factory("rotation")
    old = load_gateway_keys(directory)
    old_token = issue_token(
        old.signing_key, old.signing_key_id, agency="MOH", year=2025, serial=7,
        issued_at=WHEN, document_sha256=digests(1),
    )  # fmt: skip
    # Rotate: keep the old public key among the retired ones, make a new signing key.
    retired = directory / RETIRED_SIGNING_DIR
    retired.mkdir(mode=0o700)
    (retired / f"{old.signing_key_id}.pem").write_bytes(
        old.signing_public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    (directory / SIGNING_KEY_FILE).unlink()
    ensure_gateway_keys(directory)
    new = load_gateway_keys(directory)
    assert new.signing_key_id != old.signing_key_id
    assert set(new.verification_keys) == {old.signing_key_id, new.signing_key_id}

    new_token = issue_token(
        new.signing_key, new.signing_key_id, agency="MOH", year=2025, serial=8,
        issued_at=WHEN, document_sha256=digests(1),
    )  # fmt: skip
    for token, kid in ((old_token, old.signing_key_id), (new_token, new.signing_key_id)):
        result = verify_token(token, new.verification_keys)
        assert isinstance(result, TokenContents) and result.key_id == kid
    only_current = {new.signing_key_id: new.signing_public_key}
    result = verify_token(old_token, only_current)
    assert isinstance(result, TokenError) and result.problem is TokenProblem.UNKNOWN_KEY


@pytest.mark.parametrize("n_docs", [1, 5, MAX_TOKEN_DIGESTS, 255])
@pytest.mark.parametrize("agency", ["MOH", "MOH-PLN", LONGEST_AGENCY])
def test_token_and_url_fit_qr_version_15(
    signer: tuple[ed25519.Ed25519PrivateKey, str], n_docs: int, agency: str
) -> None:
    public_url = "https://verification.agency-govt.example"
    assert len(public_url) == 40
    token = make(signer, n_docs=n_docs, agency=agency, serial=2**32 - 1)
    assert len(token) <= MAX_TOKEN_CHARS
    assert qr_version(f"{public_url}/v/{token}") <= MAX_QR_VERSION


def test_longest_agency_matches_the_limit() -> None:
    assert len(LONGEST_AGENCY) == MAX_AGENCY_CHARS
    assert DIGEST_BYTES == 16


def test_documented_example_matches() -> None:
    """docs/TOKENS.md shows a token made with a fixed key; rebuild it byte for byte."""
    key = ed25519.Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    kid = key_id(key.public_key())
    digest = hashlib.sha256(b"report.pdf contents").hexdigest()
    token = issue_token(
        key, kid, agency="MOH", year=2025, serial=42, issued_at=WHEN, document_sha256=[digest]
    )
    text = DOCS.read_text(encoding="utf-8")
    assert kid in text and digest in text
    assert f"\n{token}\n" in text
    raw = decode_token_bytes(token)
    assert isinstance(raw, bytes) and len(raw) == 104
    assert f"Token ({len(token)} characters)" in text

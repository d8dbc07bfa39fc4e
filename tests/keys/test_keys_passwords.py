from __future__ import annotations

import statistics
import time

import pytest

from keys.passwords import (
    PasswordHasherProfile,
    PasswordHashError,
    WeakPasswordError,
    check_new_password,
    hash_password,
    needs_rehash,
    verify_or_dummy,
    verify_password,
)

TEST = PasswordHasherProfile.TEST


def test_verify_accepts_right_and_refuses_wrong_password() -> None:
    stored = hash_password("correct horse battery", TEST)
    assert stored.startswith("$argon2id$v=19$")
    assert verify_password(stored, "correct horse battery")
    assert not verify_password(stored, "correct horse batterz")
    assert not verify_password(stored, "")


def test_default_profile_is_rfc9106_low_memory() -> None:
    stored = hash_password("correct horse battery")
    assert "$m=65536,t=3,p=4$" in stored
    assert verify_password(stored, "correct horse battery")
    assert not needs_rehash(stored)


def test_hashes_are_salted() -> None:
    assert hash_password("same password!", TEST) != hash_password("same password!", TEST)


def test_cheaper_profiles_are_flagged_for_rehash() -> None:
    cheap = hash_password("correct horse battery", TEST)
    assert needs_rehash(cheap)
    assert not needs_rehash(cheap, TEST)
    bulk = hash_password("correct horse battery", PasswordHasherProfile.BULK)
    assert needs_rehash(bulk)
    assert verify_password(bulk, "correct horse battery")


def test_verify_or_dummy() -> None:
    stored = hash_password("correct horse battery", TEST)
    assert verify_or_dummy(stored, "correct horse battery", TEST)
    assert not verify_or_dummy(stored, "wrong password", TEST)
    assert not verify_or_dummy(None, "correct horse battery", TEST)
    assert not verify_or_dummy(None, "", TEST)


def test_unknown_user_costs_as_much_as_wrong_password() -> None:
    stored = hash_password("correct horse battery")
    verify_or_dummy(None, "warm-up")  # the dummy hash is made once, on first use

    def median_seconds(password_hash: str | None) -> float:
        samples = []
        for _ in range(3):
            start = time.perf_counter()
            assert not verify_or_dummy(password_hash, "wrong password")
            samples.append(time.perf_counter() - start)
        return statistics.median(samples)

    known, unknown = median_seconds(stored), median_seconds(None)
    assert 0.33 < unknown / known < 3.0


def test_corrupt_stored_hash_is_an_error_not_a_mismatch() -> None:
    with pytest.raises(PasswordHashError):
        verify_password("not-a-hash", "whatever password")
    with pytest.raises(PasswordHashError):
        needs_rehash("not-a-hash")


ADDRESS = "ali.hassan@moh.gov.example"


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("", "too short"),
        ("short", "too short"),
        ("123456789", "at least 10 characters"),
        ("x" * 1025, "too long"),
        ("aaaaaaaaaaaa", "repeated character"),
        ("Password123", "well-known"),
        ("1234567890", "well-known"),
        ("Ali.Hassan@moh.gov.example", "mail address"),
        ("Ali.Hassan", "mail address"),
        ("Ali.Hassan1", None),
        ("a long enough passphrase", None),
    ],
)
def test_check_new_password(password: str, reason: str | None) -> None:
    if reason is None:
        check_new_password(password, address=ADDRESS)
        return
    with pytest.raises(WeakPasswordError, match=reason):
        check_new_password(password, address=ADDRESS)


def test_check_new_password_without_address() -> None:
    check_new_password("ali.hassan@moh.gov.example")

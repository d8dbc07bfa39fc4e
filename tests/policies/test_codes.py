"""Employee codes: ISO 7064 MOD 37,36 check characters and what they catch."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from policies.codes import (
    ALPHABET,
    CodeError,
    EmployeeCode,
    check_character,
    confusable_key,
    is_valid_checked,
    swap_undetectable,
)

# Agencies of a directory in which no two codes differ only in hyphens.
AGENCIES = {"MOH", "MOH-BGD", "MOF", "CAB", "GOV-BSR", "MOH-PLN", "A1", "MOE-DIR2"}
SAMPLE = [
    str(EmployeeCode(agency, serial))
    for agency in sorted(AGENCIES)
    for serial in (1, 2, 9, 10, 42, 999, 123456, 999999)
]


def accepted(text: str) -> bool:
    """What the gateway accepts: a well-formed, checked code of a registered agency."""
    try:
        code = EmployeeCode.parse(text)
    except CodeError:
        return False
    return code.agency in AGENCIES


def test_known_vector() -> None:
    # ISO 7064 MOD 37,36 as used by the Global Release Identifier: A1-2425G-ABC1234002-M.
    assert check_character("A12425GABC1234002") == "M"
    assert is_valid_checked("A12425GABC1234002M")


def test_format_and_round_trip() -> None:
    code = EmployeeCode("MOH", 42)
    text = str(code)
    assert text.startswith("MOH-000042-") and len(text) == len("MOH-000042-K")
    assert EmployeeCode.parse(text) == code
    assert EmployeeCode.parse(" " + text.lower() + "\n") == code


@pytest.mark.parametrize("text", SAMPLE)
def test_every_single_character_error_is_rejected(text: str) -> None:
    assert accepted(text)
    wrong = 0
    for i, original in enumerate(text):
        for replacement in ALPHABET + "-":
            if replacement == original:
                continue
            mutated = text[:i] + replacement + text[i + 1 :]
            assert not accepted(mutated), f"{text} -> {mutated} was accepted"
            wrong += 1
    assert wrong == len(text) * len(ALPHABET)


ISSUED = {code: f"employee-{n}" for n, code in enumerate(SAMPLE)}


def accepted_as_own(text: str, owner: str) -> bool:
    """What submission accepts: a well-formed code equal to the sender's own code."""
    return accepted(text) and str(EmployeeCode.parse(text)) == next(
        c for c, who in ISSUED.items() if who == owner
    )


@pytest.mark.parametrize("text", SAMPLE)
def test_every_adjacent_swap_is_rejected(text: str) -> None:
    """Every swap is refused; the check character alone refuses all but the ISO blind spot."""
    blind = 0
    for i in range(len(text) - 1):
        if text[i] == text[i + 1]:
            continue
        swapped = text[:i] + text[i + 1] + text[i] + text[i + 2 :]
        assert not accepted_as_own(swapped, ISSUED[text]), f"{text} -> {swapped} accepted"
        if accepted(swapped):
            # Only the documented ISO 7064 hybrid blind spot gets past the check
            # character: two digits of consecutive value at one running state.
            prefix = confusable_key(text[:i])
            assert "-" not in text[i : i + 2]
            assert swap_undetectable(prefix, text[i], text[i + 1]), swapped
            assert abs(ALPHABET.index(text[i]) - ALPHABET.index(text[i + 1])) == 1
            blind += 1
    assert blind <= 1


def test_the_blind_spot_is_the_documented_size() -> None:
    cases = sum(
        swap_undetectable(prefix, a, b)
        for prefix in ["", *[ALPHABET[i] for i in range(36)]]
        for a in ALPHABET
        for b in ALPHABET
        if a != b
    )
    assert 0 < cases <= 2 * 37  # of 37 * 36 * 35 = 46,620 state/pair combinations here


@given(
    agency=st.from_regex(r"[A-Z][A-Z0-9]{1,6}", fullmatch=True),
    serial=st.integers(min_value=1, max_value=999_999),
    position=st.integers(min_value=0),
    replacement=st.sampled_from(ALPHABET),
)
def test_any_substitution_in_the_checked_string_is_caught(
    agency: str, serial: int, position: int, replacement: str
) -> None:
    payload = EmployeeCode(agency, serial).payload
    checked = payload + check_character(payload)
    i = position % len(checked)
    if checked[i] == replacement:
        return
    assert not is_valid_checked(checked[:i] + replacement + checked[i + 1 :])


@pytest.mark.parametrize(
    "text",
    ["", "MOH", "MOH-42-K", "MOH-0000042-K", "moh_000042-k", "MOH-000000-" + "0", "-000042-K"],
)
def test_malformed_codes_are_refused_with_a_reason(text: str) -> None:
    with pytest.raises(CodeError):
        EmployeeCode.parse(text)

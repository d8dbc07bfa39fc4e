"""Employee codes: `<AGENCY>-<6-digit serial>-<check>` (docs/CONTRACT.md §3).

Owns: formatting, parsing and the ISO 7064 MOD 37,36 check character. Must not:
look anything up; whether a code was actually issued is the directory's question.

The check character is computed over the code's alphanumeric characters (the
agency code without its hyphens, then the serial) with the ISO 7064 hybrid
system MOD 37,36. It detects every single substituted character. It detects
adjacent swaps except one narrow class that ISO 7064 itself leaves open for
hybrid systems ("nearly all transpositions"): two neighbouring characters whose
values differ by one, meeting one particular running state (72 of the 45,360
state/pair combinations; `swap_undetectable` names them). Such a swapped code
is still refused wherever it matters, because a code is only accepted as the
authenticated sender's own issued code. Errors that move or replace a hyphen
inside the agency code are caught because the result must name a registered
agency, and the directory refuses two agency codes that differ only in hyphens
(`confusable_key`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_M = 36
SERIAL_DIGITS = 6
MAX_SERIAL = 10**SERIAL_DIGITS - 1

AGENCY_CODE_RE = re.compile(r"^[A-Z][A-Z0-9]{1,15}(?:-[A-Z0-9]{1,16}){0,3}$")
_CODE_RE = re.compile(
    r"^(?P<agency>[A-Z][A-Z0-9]*(?:-[A-Z0-9]+)*)-(?P<serial>[0-9]{6})-(?P<check>[0-9A-Z])$"
)


class CodeError(ValueError):
    """A string that is not a well-formed employee code; the message says why."""


def _values(payload: str) -> list[int]:
    try:
        return [ALPHABET.index(ch) for ch in payload]
    except ValueError:
        raise CodeError(f"invalid character in {payload!r}") from None


def check_character(payload: str) -> str:
    """ISO 7064 MOD 37,36 check character for an alphanumeric `payload`."""
    return ALPHABET[(_M + 1 - running_state(payload)) % _M]


def running_state(payload: str, state: int = _M) -> int:
    """The MOD 37,36 state after `payload`, starting from `state` (36 at the start)."""
    product = state
    for value in _values(payload):
        total = (product + value) % _M or _M
        product = (total * 2) % (_M + 1)
    return product


def swap_undetectable(prefix: str, first: str, second: str) -> bool:
    """True when swapping `first` and `second` after `prefix` keeps the check valid.

    This is the ISO 7064 hybrid-system blind spot described in the module docstring.
    """
    state = running_state(prefix)
    return first != second and running_state(first + second, state) == running_state(
        second + first, state
    )


def is_valid_checked(payload_with_check: str) -> bool:
    """True when the last character is the correct check of the ones before it."""
    if len(payload_with_check) < 2:
        return False
    product = _M
    try:
        values = _values(payload_with_check)
    except CodeError:
        return False
    total = 0
    for value in values:
        total = (product + value) % _M or _M
        product = (total * 2) % (_M + 1)
    return total == 1


def confusable_key(agency_code: str) -> str:
    """The agency code without hyphens: two agencies must not share it."""
    return agency_code.replace("-", "")


def validate_agency_code(code: str) -> str:
    """Return the code if it is a well-formed agency code, else raise CodeError."""
    if not AGENCY_CODE_RE.fullmatch(code):
        raise CodeError(
            f"invalid agency code {code!r}: use upper-case letters and digits, starting"
            " with a letter, in up to four hyphen-separated parts (e.g. MOH, MOH-BGD)"
        )
    return code


@dataclass(frozen=True, slots=True)
class EmployeeCode:
    agency: str
    serial: int

    def __post_init__(self) -> None:
        validate_agency_code(self.agency)
        if not 1 <= self.serial <= MAX_SERIAL:
            raise CodeError(f"serial {self.serial} out of range 1..{MAX_SERIAL}")

    @property
    def payload(self) -> str:
        return confusable_key(self.agency) + f"{self.serial:0{SERIAL_DIGITS}d}"

    @property
    def check(self) -> str:
        return check_character(self.payload)

    def __str__(self) -> str:
        return f"{self.agency}-{self.serial:0{SERIAL_DIGITS}d}-{self.check}"

    @classmethod
    def parse(cls, text: str) -> EmployeeCode:
        """Parse and check a code; raises CodeError with the reason.

        Accepts surrounding whitespace and lower case (people type these), nothing else.
        """
        normalized = text.strip().upper()
        match = _CODE_RE.fullmatch(normalized)
        if match is None:
            raise CodeError(f"{text!r} is not shaped like an employee code (AGENCY-NNNNNN-C)")
        if int(match["serial"]) == 0:
            raise CodeError(f"{text!r}: serial 000000 is never issued")
        code = cls(match["agency"], int(match["serial"]))
        if not is_valid_checked(code.payload + match["check"]):
            raise CodeError(f"{text!r}: wrong check character (mistyped code?)")
        return code

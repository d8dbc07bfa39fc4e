"""Registry numbers `<AGENCY>/<YEAR>/<serial>` (docs/CONTRACT.md §6): text form only.

Owns: formatting and strict parsing. Must not: allocate serials; the store hands
them out gap-free per agency and year inside the acceptance transaction.
The serial is written with at least SERIAL_MIN_DIGITS digits (zero-padded), so
numbers of one year sort as text up to 999,999 and read aloud the same way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from keys.tokens import MAX_SERIAL, MAX_YEAR, MIN_YEAR
from policies.codes import AGENCY_CODE_RE

SERIAL_MIN_DIGITS = 6
_REGISTRY_RE = re.compile(r"^(?P<agency>[A-Z0-9-]+)/(?P<year>[0-9]{4})/(?P<serial>[0-9]{6,10})$")


class RegistryError(ValueError):
    """Text that is not a well-formed registry number; the message says why."""


@dataclass(frozen=True, slots=True, order=True)
class RegistryNumber:
    agency: str
    year: int
    serial: int

    def __post_init__(self) -> None:
        if not AGENCY_CODE_RE.fullmatch(self.agency):
            raise RegistryError(f"invalid agency code {self.agency!r} in registry number")
        if not MIN_YEAR <= self.year <= MAX_YEAR:
            raise RegistryError(f"registry year {self.year} out of range {MIN_YEAR}..{MAX_YEAR}")
        if not 1 <= self.serial <= MAX_SERIAL:
            raise RegistryError(f"registry serial {self.serial} out of range 1..{MAX_SERIAL}")

    def __str__(self) -> str:
        return f"{self.agency}/{self.year}/{self.serial:0{SERIAL_MIN_DIGITS}d}"

    @classmethod
    def parse(cls, text: str) -> RegistryNumber:
        """Parse the canonical form; surrounding spaces and lower case are accepted.

        Extra leading zeros (`MOH/2025/0000042`) are refused: one number, one text.
        """
        normalized = text.strip().upper()
        match = _REGISTRY_RE.fullmatch(normalized)
        if match is None:
            raise RegistryError(f"{text!r} is not a registry number (AGENCY/YEAR/NNNNNN)")
        number = cls(match["agency"], int(match["year"]), int(match["serial"]))
        if str(number) != normalized:
            raise RegistryError(f"{text!r}: serial has extra leading zeros")
        return number


def format_registry(agency: str, year: int, serial: int) -> str:
    """`format_registry("MOH", 2025, 42)` -> "MOH/2025/000042"."""
    return str(RegistryNumber(agency, year, serial))


def parse_registry(text: str) -> RegistryNumber:
    """`RegistryNumber.parse(text)`; raises RegistryError."""
    return RegistryNumber.parse(text)

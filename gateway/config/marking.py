"""The `[marking]` section: which copies carry marked PDF documents (docs/SECURITY-TEAMS.md §5).

Owns: the two settings, their validation and turning them into the stamper's
`MarkingPolicy`. Must not: mark anything (gateway.stamping.pdf_mark does).
Failure: an unknown classification or a malformed agency entry is a clear
configuration error at start-up, naming the setting.
"""

from __future__ import annotations

from pydantic import Field, field_validator

from gateway.config.sections import Section
from gateway.stamping.marked_copies import MarkingPolicy
from policies.codes import AGENCY_CODE_RE
from policies.directory import Clearance


def _clearances(text: str) -> frozenset[Clearance]:
    """ "confidential,secret" -> the set; "none" or "" -> the empty set."""
    words = [w.strip() for w in text.split(",") if w.strip()]
    if words == ["none"]:
        return frozenset()
    return frozenset(Clearance.parse(word) for word in words)


def _agencies(text: str) -> dict[str, frozenset[Clearance]]:
    """ "MOH=secret; MOF-TAX=none" -> {agency code: classifications}."""
    out: dict[str, frozenset[Clearance]] = {}
    for entry in (e.strip() for e in text.split(";")):
        if not entry:
            continue
        code, sep, chosen = entry.partition("=")
        code = code.strip()
        if not sep or not AGENCY_CODE_RE.fullmatch(code):
            raise ValueError(f"{entry!r}: write AGENCY=classification[,classification] or =none")
        out[code] = _clearances(chosen)
    return out


class MarkingSettings(Section):
    """Forensic marking of PDF documents in recipients' copies, by classification."""

    classifications: str = Field(
        default="confidential,secret",
        description="Classifications whose PDF documents recipients get as marked reading"
        " copies, comma-separated (none: no marking).",
    )
    agencies: str = Field(
        default="",
        description="Per issuing agency (and the agencies below it), its own list instead:"
        ' "MOH=secret; MOF-TAX=none".',
    )

    @field_validator("classifications")
    @classmethod
    def _check_classifications(cls, value: str) -> str:
        _clearances(value)
        return value

    @field_validator("agencies")
    @classmethod
    def _check_agencies(cls, value: str) -> str:
        _agencies(value)
        return value

    def policy(self) -> MarkingPolicy:
        return MarkingPolicy(_clearances(self.classifications), _agencies(self.agencies))

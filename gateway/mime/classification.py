"""The message's classification from its headers, mapped onto Barid's four levels.

Owns: `Barid-Classification`, RFC 7444 `SIO-Label`, Outlook's `Sensitivity` and
their mapping (see `read_classification`); disagreeing headers resolve upwards.
Must not: compare the level with anyone's clearance; the submission checks do.
"""

from __future__ import annotations

import binascii
import re
from dataclasses import dataclass

from gateway.mime.headers import HeaderField, all_named
from gateway.mime.params import parse_parameters
from gateway.mime.verdicts import RejectedError, refused
from policies.directory import Clearance

DEFAULT_CLASSIFICATION = Clearance.INTERNAL

_BARID = {c.label: c for c in Clearance}
_SENSITIVITY = {
    "normal": Clearance.INTERNAL,
    "personal": Clearance.INTERNAL,
    "private": Clearance.CONFIDENTIAL,
    "company-confidential": Clearance.CONFIDENTIAL,
}
_ESS_LEVELS = {
    1: Clearance.PUBLIC,
    2: Clearance.INTERNAL,
    3: Clearance.CONFIDENTIAL,
    4: Clearance.SECRET,
}
_ESS_TOP_SECRET = 5
_ABOVE_SECRET = re.compile(r"\bTOP SECRET\b|\bCOSMIC\b")
_MARKING_WORDS: tuple[tuple[re.Pattern[str], Clearance], ...] = (
    (re.compile(r"\bSECRET\b"), Clearance.SECRET),
    (re.compile(r"\bCONFIDENTIAL\b|\bSENSITIVE\b"), Clearance.CONFIDENTIAL),
    (re.compile(r"\bRESTRICTED\b|\bINTERNAL\b|\bOFFICIAL\b|\bFOUO\b"), Clearance.INTERNAL),
    (re.compile(r"\bUNCLASSIFIED\b|\bPUBLIC\b"), Clearance.PUBLIC),
)


@dataclass(frozen=True, slots=True)
class ClassificationSource:
    """One header that said something about the classification."""

    header: str  # "Barid-Classification", "SIO-Label" or "Sensitivity"
    value: str
    level: Clearance


@dataclass(frozen=True, slots=True)
class ClassificationFacts:
    level: Clearance
    sources: tuple[ClassificationSource, ...]  # empty: the default applied
    note: str | None  # set when the headers disagreed and the highest was taken


def _unknown(header: str) -> RejectedError:
    return RejectedError(refused(f"unknown classification in {header} header"))


def _marking_level(marking: str) -> Clearance:
    words = " ".join(re.sub(r"[^0-9A-Za-z]+", " ", marking).upper().split())
    if _ABOVE_SECRET.search(words):
        raise RejectedError(refused("classification above secret is not carried"))
    for pattern, level in _MARKING_WORDS:
        if pattern.search(words):
            return level
    raise _unknown("SIO-Label")


def _der_length(data: bytes, pos: int) -> tuple[int, int]:
    first = data[pos]
    if first < 0x80:
        return first, pos + 1
    count = first & 0x7F
    if count == 0 or count > 4 or pos + 1 + count > len(data):
        raise _unknown("SIO-Label")
    return int.from_bytes(data[pos + 1 : pos + 1 + count], "big"), pos + 1 + count


def _ess_level(label: str) -> Clearance | None:
    """security-classification of a DER ESSSecurityLabel; None when unmarked/absent."""
    try:
        der = binascii.a2b_base64(label.encode("ascii"), strict_mode=True)
    except (binascii.Error, UnicodeEncodeError):
        raise _unknown("SIO-Label") from None
    if len(der) < 2 or der[0] != 0x31:  # SET
        raise _unknown("SIO-Label")
    try:
        length, pos = _der_length(der, 1)
        if pos + length != len(der):
            raise _unknown("SIO-Label")
        while pos < len(der):
            tag = der[pos]
            size, body = _der_length(der, pos + 1)
            if body + size > len(der):
                raise _unknown("SIO-Label")
            if tag == 0x02:  # INTEGER: security-classification
                if not 1 <= size <= 4:
                    raise _unknown("SIO-Label")
                value = int.from_bytes(der[body : body + size], "big", signed=True)
                if value == 0:
                    return None
                if value == _ESS_TOP_SECRET:
                    raise RejectedError(refused("classification above secret is not carried"))
                if value not in _ESS_LEVELS:
                    raise _unknown("SIO-Label")
                return _ESS_LEVELS[value]
            pos = body + size
    except IndexError:
        raise _unknown("SIO-Label") from None
    return None


def _sio_level(value: str) -> Clearance:
    """RFC 7444 §3: `marking="SECRET"; fgcolor=...; type=":ess"; label=...`."""
    params = parse_parameters(";" + value, 0, "SIO-Label")
    levels: list[Clearance] = []
    if params.get("marking"):
        levels.append(_marking_level(params["marking"]))
    if params.get("type", "").lower() == ":ess" and params.get("label"):
        level = _ess_level(params["label"])
        if level is not None:
            levels.append(level)
    if not levels:
        raise _unknown("SIO-Label")
    return max(levels)


def read_classification(fields: tuple[HeaderField, ...]) -> ClassificationFacts:
    """Every classification header, mapped; the highest wins; none -> internal.

    Mappings (a label we cannot place is refused, never lowered):
    - Barid-Classification: public | internal | confidential | secret, exactly.
    - SIO-Label `marking=` (display marking; the highest keyword found wins):
      UNCLASSIFIED, PUBLIC -> public; RESTRICTED, INTERNAL, OFFICIAL, FOUO and
      "FOR OFFICIAL USE ONLY" -> internal; CONFIDENTIAL, SENSITIVE (as in
      OFFICIAL-SENSITIVE) -> confidential; SECRET -> secret; TOP SECRET and COSMIC
      are above what Barid carries and are refused.
    - SIO-Label `type=":ess"` `label=` (base64 DER ESSSecurityLabel, RFC 2634 §5.4):
      security-classification 1 unclassified -> public, 2 restricted -> internal,
      3 confidential -> confidential, 4 secret -> secret, 5 top-secret refused,
      0 unmarked adds nothing; other values are refused. `:x411`/`:xml` labels are
      not decoded; their `marking=` is used.
    - Sensitivity: Normal, Personal -> internal; Private, Company-Confidential ->
      confidential (restricted circulation is honoured upwards).
    Refusals are 550 5.7.1: "unknown classification in <header> header", or
    "classification above secret is not carried".
    """
    sources: list[ClassificationSource] = []
    for field in all_named(fields, "Barid-Classification"):
        level = _BARID.get(field.value.strip().lower())
        if level is None:
            raise _unknown("Barid-Classification")
        sources.append(ClassificationSource("Barid-Classification", field.value, level))
    for field in all_named(fields, "SIO-Label"):
        sources.append(ClassificationSource("SIO-Label", field.value, _sio_level(field.value)))
    for field in all_named(fields, "Sensitivity"):
        level = _SENSITIVITY.get(field.value.strip().lower())
        if level is None:
            raise _unknown("Sensitivity")
        sources.append(ClassificationSource("Sensitivity", field.value, level))
    if not sources:
        return ClassificationFacts(DEFAULT_CLASSIFICATION, (), None)
    level = max(s.level for s in sources)
    note = None
    if len({s.level for s in sources}) > 1:
        said = ", ".join(f"{s.header} {s.level.label}" for s in sources)
        note = f"classification headers disagree ({said}); the highest, {level.label}, applies"
    return ClassificationFacts(level, tuple(sources), note)

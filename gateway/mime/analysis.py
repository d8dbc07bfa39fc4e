"""The entry points: a message's bytes in, an `Analysis` or a `Rejection` out.

Owns: the order of the steps and turning an internal early exit into a value.
Must not: do I/O, read a clock, verify signatures or copy the message.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.mime.classification import ClassificationSource, read_classification
from gateway.mime.headers import HeaderField
from gateway.mime.limits import MimeLimits, precheck
from gateway.mime.originator import read_originator
from gateway.mime.signed import DocumentPart, InlineText, SignedUnit, locate
from gateway.mime.structure import Part, scan_structure
from gateway.mime.verdicts import RejectedError, Rejection
from policies.directory import Clearance


@dataclass(frozen=True, slots=True)
class EntityAnalysis:
    """The MIME structure of one entity: a message, or the content of a signed-data."""

    raw: bytes
    root: Part
    signed_units: tuple[SignedUnit, ...]
    documents: tuple[DocumentPart, ...]
    inline_texts: tuple[InlineText, ...]

    @property
    def uncovered_documents(self) -> tuple[DocumentPart, ...]:
        return tuple(d for d in self.documents if not d.covered_by)


@dataclass(frozen=True, slots=True)
class Analysis:
    """Everything the submission checks need to know about a message's bytes."""

    raw: bytes
    root: Part
    headers: tuple[HeaderField, ...]  # the top-level header section, in order
    from_address: str
    from_display_name: str
    sender_address: str | None
    subject: str
    message_id: str | None
    employee_code: str | None
    classification: Clearance
    classification_sources: tuple[ClassificationSource, ...]
    classification_note: str | None
    signed_units: tuple[SignedUnit, ...]
    documents: tuple[DocumentPart, ...]
    inline_texts: tuple[InlineText, ...]

    @property
    def uncovered_documents(self) -> tuple[DocumentPart, ...]:
        """Attachments no signature covers (docs/CONTRACT.md §4: each one refuses the message)."""
        return tuple(d for d in self.documents if not d.covered_by)


def _structure(raw: bytes, limits: MimeLimits) -> Part:
    failed = precheck(raw, limits)
    if failed is not None:
        raise RejectedError(failed)
    return scan_structure(raw, limits)


def analyze_entity(raw_entity: bytes, limits: MimeLimits) -> EntityAnalysis | Rejection:
    """Analyse a MIME entity without message headers, e.g. the content a verifier
    extracted from an S/MIME signed-data (RFC 8551 §3.5): same limits, same rules."""
    try:
        root = _structure(raw_entity, limits)
        units, documents, texts = locate(raw_entity, root)
    except RejectedError as exc:
        return exc.rejection
    return EntityAnalysis(raw_entity, root, units, documents, texts)


def analyze(raw: bytes, limits: MimeLimits) -> Analysis | Rejection:
    """Analyse a submitted message (CRLF line ends, as received after DATA).

    Steps, cheapest first: byte checks, structure, header facts, classification,
    then signed units and documents (the only step that decodes bodies).
    """
    try:
        root = _structure(raw, limits)
        origin = read_originator(root.headers)
        classification = read_classification(root.headers)
        units, documents, texts = locate(raw, root)
    except RejectedError as exc:
        return exc.rejection
    return Analysis(
        raw=raw,
        root=root,
        headers=root.headers,
        from_address=origin.from_address,
        from_display_name=origin.from_display_name,
        sender_address=origin.sender_address,
        subject=origin.subject,
        message_id=origin.message_id,
        employee_code=origin.employee_code,
        classification=classification.level,
        classification_sources=classification.sources,
        classification_note=classification.note,
        signed_units=units,
        documents=documents,
        inline_texts=texts,
    )

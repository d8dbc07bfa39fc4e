"""Which content parts of a message its signatures cover, for the people who read it.

Owns: listing the content of an analysed message in order (inline message text,
documents, opaque signed data) with whether a signed unit covers each part. Must
not: verify anything; a submission is accepted only when every signed unit is a
valid signature of the sender, so "covered" then means "signed by the sender".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from gateway.mime.signed import DocumentPart, InlineText, SignedUnit
from gateway.mime.structure import PartPath, format_path

PartKind = Literal["text", "document", "signed-data"]


@dataclass(frozen=True, slots=True)
class ContentPart:
    """One content part of an original message and whether a signature covers it."""

    path: PartPath
    kind: PartKind
    content_type: str
    name: str  # a document's (or a signed file's) name; "" for message text
    covered: bool

    @property
    def section(self) -> str:
        """The part's number as IMAP counts it (RFC 3501 §6.4.5): "2.1"; "1" when
        the whole message is one part."""
        return format_path(self.path) if self.path else "1"


def content_parts(
    units: tuple[SignedUnit, ...],
    documents: tuple[DocumentPart, ...],
    texts: tuple[InlineText, ...],
) -> tuple[ContentPart, ...]:
    """Every content part in message order; signature parts are not content.

    An S/MIME signed-data part (RFC 8551 §3.5) is one covered part: everything in
    it is inside its signature.
    """
    parts = [ContentPart(t.path, "text", t.content_type, "", bool(t.covered_by)) for t in texts]
    parts += [
        ContentPart(d.path, "document", d.content_type, d.name, bool(d.covered_by))
        for d in documents
    ]
    parts += [
        ContentPart(u.path, "signed-data", "application/pkcs7-mime", "", True)
        for u in units
        if u.kind == "smime-opaque"
    ]
    return tuple(sorted(parts, key=lambda part: part.path))

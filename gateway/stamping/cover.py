"""The human-read cover part of a delivered copy: what it states, in Arabic and English.

Owns: the facts a cover shows (`CoverFacts`, including which parts of the original
the sender's signature covers) and rendering them with the templates `cover.txt`
and `cover.html`. Must not: encode MIME or touch bytes of the original; nothing
here is trusted, the HTML template escapes every value.
"""

from __future__ import annotations

import dataclasses
import secrets
from dataclasses import dataclass

from gateway.mime.coverage import ContentPart
from gateway.presentation import Lang, Value, escape, render_mail_html, render_mail_text
from policies.directory import Clearance

ORIGINAL_NAME = "original.eml"
CERTIFICATE_NAME = "certificate.json"
_TEXT_KEYS = {"text/plain": "part.text_plain", "text/html": "part.text_html"}


@dataclass(frozen=True, slots=True)
class CoverDocument:
    name: str
    sha256: str
    size: int


@dataclass(frozen=True, slots=True)
class CoverPart:
    """A part of the original as the cover names it, and its number."""

    what: Value
    section: str


def _shown(part: ContentPart) -> CoverPart:
    if part.name:
        return CoverPart(Value(part.name, "user"), part.section)
    if part.kind == "text":
        return CoverPart(Value(_TEXT_KEYS.get(part.content_type, "part.text_plain"), "key"),
                         part.section)  # fmt: skip
    return CoverPart(Value("part.signed_data", "key"), part.section)


@dataclass(frozen=True, slots=True)
class CoverFacts:
    """Everything the cover page shows about one copy."""

    registry: str
    agency_code: str
    agency_name_ar: str
    agency_name_en: str
    sender_name_ar: str
    sender_name_en: str
    sender_code: str
    recipient: str
    classification: Clearance
    trace_code: str
    issued_at: str  # "2025-03-01 10:15:30 UTC"
    verify_url: str
    documents: tuple[CoverDocument, ...]
    # The original's content parts (gateway.mime.coverage); () when not known.
    parts: tuple[ContentPart, ...] = ()
    # The copy carries marked reading copies of the PDF documents (gateway.stamping.pdf_mark).
    marked: bool = False

    def agency_name(self, lang: Lang) -> str:
        return self.agency_name_ar if lang == "ar" else self.agency_name_en

    def sender_name(self, lang: Lang) -> str:
        return self.sender_name_ar if lang == "ar" else self.sender_name_en

    @property
    def partly_signed(self) -> bool:
        """Some part of the original lies outside every signature: the cover says so."""
        return any(not part.covered for part in self.parts)

    @property
    def signed_parts(self) -> tuple[CoverPart, ...]:
        return tuple(_shown(part) for part in self.parts if part.covered)

    @property
    def unsigned_parts(self) -> tuple[CoverPart, ...]:
        return tuple(_shown(part) for part in self.parts if not part.covered)


def _context(facts: CoverFacts) -> dict[str, object]:
    return {"f": facts, "original_name": ORIGINAL_NAME, "certificate_name": CERTIFICATE_NAME}


def cover_text(facts: CoverFacts) -> str:
    """The text/plain cover: Arabic section, a rule, the English section (CRLF ends)."""
    return render_mail_text("cover.txt", **_context(facts))


def cover_html(facts: CoverFacts, qr_cid: str, qr_pixels: int) -> str:
    """The text/html cover, showing the QR image by Content-ID (RFC 2392)."""
    return render_mail_html(
        "cover.html", title=facts.registry, qr_cid=qr_cid, qr_pixels=qr_pixels, **_context(facts)
    )


@dataclass(frozen=True, slots=True)
class MessageCover:
    """A message's cover rendered once, with marks where each copy's recipient and
    trace code go: every copy differs from the next only in those two values."""

    text: str
    html: str
    recipient_mark: str
    trace_mark: str

    def for_copy(self, recipient: str, trace_code: str) -> tuple[str, str]:
        """(text/plain, text/html) of one copy's cover."""
        text = self.text.replace(self.recipient_mark, recipient)
        page = self.html.replace(self.recipient_mark, escape(recipient))
        text = text.replace(self.trace_mark, trace_code)
        page = page.replace(self.trace_mark, escape(trace_code))
        return text, page


def message_cover(facts: CoverFacts, qr_cid: str, qr_pixels: int) -> MessageCover:
    """The cover of every copy of one message; `facts.recipient` and
    `facts.trace_code` are ignored (each copy fills in its own)."""
    nonce = secrets.token_hex(8)  # NUL never occurs in a value shown on the cover
    recipient_mark, trace_mark = f"\x00r{nonce}\x00", f"\x00t{nonce}\x00"
    marked = dataclasses.replace(facts, recipient=recipient_mark, trace_code=trace_mark)
    return MessageCover(
        cover_text(marked), cover_html(marked, qr_cid, qr_pixels), recipient_mark, trace_mark
    )

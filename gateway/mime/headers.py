"""One entity's header section: fields with their byte offsets, unfolded values.

Owns: splitting a header section into fields (RFC 5322 §2.2, §3.6.8 field names),
unfolding (§2.2.3), the line-length and size limits, and RFC 2047 decoding of
display text. Must not: interpret a field's meaning; the raw bytes stay the truth.
"""

from __future__ import annotations

import email.errors
import email.header
import re
from dataclasses import dataclass

from gateway.mime.limits import MimeLimits
from gateway.mime.verdicts import RejectedError, malformed, too_big

# RFC 5322 §3.6.8: ftext = %d33-57 / %d59-126 (printable US-ASCII except ":").
_FIELD_NAME = re.compile(rb"[\x21-\x39\x3b-\x7e]+")
_WSP = (b" ", b"\t")


@dataclass(frozen=True, slots=True)
class HeaderField:
    """A header field as sent. `value` is unfolded text with outer blanks removed.

    `start`/`end` are offsets of the whole field in the raw message (folded lines
    included, the final CRLF excluded).
    """

    name: str
    value: str
    start: int
    end: int

    @property
    def key(self) -> str:
        return self.name.lower()

    @property
    def display(self) -> str:
        """The value with RFC 2047 encoded-words decoded, for showing to people."""
        return decode_words(self.value)


def _text(data: bytes) -> str:
    """Header bytes as text: ASCII, or UTF-8 (RFC 6532); other bytes are replaced."""
    try:
        return data.decode("ascii")
    except UnicodeDecodeError:
        return data.decode("utf-8", "replace")


def parse_header_block(
    raw: bytes, start: int, end: int, limits: MimeLimits
) -> tuple[HeaderField, ...]:
    """Fields of the header section raw[start:end] (its last CRLF may be absent).

    Raises RejectedError on a line that is neither a field nor a continuation,
    an over-long line, or a section over the size or field-count limit.
    """
    if end - start > limits.max_header_bytes:
        raise RejectedError(too_big("header section too large"))
    fields: list[HeaderField] = []
    name = b""
    chunks: list[bytes] = []
    field_start = pos = start
    field_end = start

    def flush() -> None:
        if chunks:
            value = _text(b"".join(chunks)).strip(" \t")
            fields.append(HeaderField(name.decode("ascii"), value, field_start, field_end))

    while pos < end:
        eol = raw.find(b"\r\n", pos, end)
        line_end = end if eol < 0 else eol
        if line_end - pos > limits.max_line_length:
            raise RejectedError(malformed("header line too long"))
        if raw[pos : pos + 1] in _WSP:
            if not chunks:
                raise RejectedError(malformed("header section starts with a continuation"))
            chunks.append(raw[pos:line_end])
        else:
            colon = raw.find(b":", pos, line_end)
            if colon <= pos or not _FIELD_NAME.fullmatch(raw, pos, colon):
                raise RejectedError(malformed("bad header syntax"))
            flush()
            if len(fields) >= limits.max_header_fields:
                raise RejectedError(too_big("too many header fields"))
            name = raw[pos:colon]
            chunks = [raw[colon + 1 : line_end]]
            field_start = pos
        field_end = line_end
        pos = line_end + 2
    flush()
    return tuple(fields)


def all_named(fields: tuple[HeaderField, ...], name: str) -> list[HeaderField]:
    key = name.lower()
    return [f for f in fields if f.key == key]


def single(fields: tuple[HeaderField, ...], name: str) -> HeaderField | None:
    """The one field called `name`, None when absent; two of them are ambiguous."""
    found = all_named(fields, name)
    if len(found) > 1:
        raise RejectedError(malformed(f"more than one {name} header"))
    return found[0] if found else None


def decode_words(text: str) -> str:
    """Decode RFC 2047 encoded-words for display; undecodable text is kept as sent.

    Blanks between adjacent encoded-words are dropped (RFC 2047 §6.2); other
    text is kept exactly, so `=?utf-8?b?...?=.pdf` stays one file name.
    """
    if "=?" not in text:
        return text
    try:
        chunks = email.header.decode_header(text)
    except (email.errors.HeaderParseError, ValueError, IndexError):
        return text
    out: list[str] = []
    for chunk, charset in chunks:
        if isinstance(chunk, str):
            out.append(chunk)
            continue
        try:
            out.append(chunk.decode(charset or "utf-8", "replace"))
        except LookupError:
            out.append(chunk.decode("utf-8", "replace"))
    return "".join(out)

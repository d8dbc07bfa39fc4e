"""The MIME tree of a message as byte offsets into the raw bytes, found in one pass.

Owns: `Part`, entity boundaries and multipart bodies split at RFC 2046 §5.1.1
delimiters (the CRLF before "--boundary" belongs to the delimiter); counts parts
and depth as it goes. Must not: decode or copy bodies.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from gateway.mime.headers import HeaderField, parse_header_block, single
from gateway.mime.limits import MimeLimits
from gateway.mime.params import parse_content_type, parse_disposition, parse_transfer_encoding
from gateway.mime.transfer import IDENTITY_ENCODINGS
from gateway.mime.verdicts import RejectedError, malformed, too_big

PartPath = tuple[int, ...]
"""1-based child indices from the top-level entity, as IMAP numbers sections: (2, 1)."""

# RFC 2046 §5.1.1: bcharsnospace / space, 1 to 70 characters, not ending in space.
_BOUNDARY = re.compile(r"[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]")
_EMPTY: Mapping[str, str] = MappingProxyType({})
_CRLF = b"\r\n"


def format_path(path: PartPath) -> str:
    """`(2, 1)` -> "2.1"; the top-level entity is "0"."""
    return ".".join(str(i) for i in path) if path else "0"


@dataclass(frozen=True, slots=True)
class Part:
    """One MIME entity. Offsets index the raw bytes the message was scanned from.

    raw[start:body_start] is the header section with the blank line after it;
    raw[body_start:end] is the body (for a multipart: preamble, parts, epilogue);
    raw[start:end] is the entity exactly as a signer saw it.
    """

    path: PartPath
    start: int
    body_start: int
    end: int
    headers: tuple[HeaderField, ...]
    content_type: str  # "type/subtype", lower-case; defaults per RFC 2045 §5.2
    params: Mapping[str, str]  # lower-case names, RFC 2231 joined and decoded
    disposition: str | None  # "attachment", "inline", ... (RFC 2183), lower-case
    disposition_params: Mapping[str, str]
    transfer_encoding: str  # lower-case; "7bit" when absent
    children: tuple[Part, ...] = ()

    @property
    def is_multipart(self) -> bool:
        return self.content_type.startswith("multipart/")

    @property
    def filename(self) -> str | None:
        """Content-Disposition filename, else the Content-Type name parameter."""
        name = self.disposition_params.get("filename") or self.params.get("name")
        return name or None

    def entity(self, raw: bytes) -> bytes:
        return raw[self.start : self.end]

    def body(self, raw: bytes) -> bytes:
        return raw[self.body_start : self.end]

    def walk(self) -> list[Part]:
        """This part and every descendant, depth first in message order."""
        out: list[Part] = []
        stack: list[Part] = [self]
        while stack:
            part = stack.pop()
            out.append(part)
            stack.extend(reversed(part.children))
        return out


class _Scan:
    """One scan's state: the raw bytes, the limits and the running part count."""

    def __init__(self, raw: bytes, limits: MimeLimits) -> None:
        self.raw = raw
        self.limits = limits
        self.parts = 0

    def count(self, more: int) -> None:
        self.parts += more
        if self.parts > self.limits.max_parts:
            raise RejectedError(too_big("too many MIME parts"))

    def entity(
        self,
        start: int,
        end: int,
        path: PartPath,
        default_type: str,
        boundaries: tuple[bytes, ...],
    ) -> Part:
        raw = self.raw
        if raw.startswith(_CRLF, start, end):
            header_end = body_start = start + 2  # no header fields at all
            fields: tuple[HeaderField, ...] = ()
        else:
            blank = raw.find(b"\r\n\r\n", start, end)
            if blank < 0:  # header fields only (RFC 2046 §5.1.1 allows an empty body)
                header_end = body_start = end
            else:
                header_end, body_start = blank + 2, blank + 4
            fields = parse_header_block(raw, start, header_end, self.limits)
        where = format_path(path)
        content_type, params = default_type, _EMPTY
        field = single(fields, "Content-Type")
        if field is not None:
            content_type, params = parse_content_type(field.value)
        disposition, disposition_params = None, _EMPTY
        field = single(fields, "Content-Disposition")
        if field is not None:
            disposition, disposition_params = parse_disposition(field.value)
        encoding = "7bit"
        field = single(fields, "Content-Transfer-Encoding")
        if field is not None:
            encoding = parse_transfer_encoding(field.value)
        children: tuple[Part, ...] = ()
        if content_type.startswith("multipart/"):
            if encoding not in IDENTITY_ENCODINGS:  # RFC 2045 §6.4
                raise RejectedError(malformed(f"encoded multipart in part {where}"))
            children = self.multipart(body_start, end, path, content_type, params, boundaries)
        return Part(
            path=path,
            start=start,
            body_start=body_start,
            end=end,
            headers=fields,
            content_type=content_type,
            params=params,
            disposition=disposition,
            disposition_params=disposition_params,
            transfer_encoding=encoding,
            children=children,
        )

    def multipart(
        self,
        start: int,
        end: int,
        path: PartPath,
        content_type: str,
        params: Mapping[str, str],
        boundaries: tuple[bytes, ...],
    ) -> tuple[Part, ...]:
        where = format_path(path)
        if len(path) + 1 > self.limits.max_depth:
            raise RejectedError(too_big("MIME nesting too deep"))
        text = params.get("boundary")
        if not text:
            raise RejectedError(malformed(f"multipart without boundary in part {where}"))
        if not _BOUNDARY.fullmatch(text):
            raise RejectedError(malformed(f"bad multipart boundary in part {where}"))
        boundary = text.encode("ascii")
        for outer in boundaries:  # one delimiter must never be read as another's
            if outer.startswith(boundary) or boundary.startswith(outer):
                raise RejectedError(malformed(f"nested boundary reused in part {where}"))
        spans = self.delimiters(start, end, b"--" + boundary, where)
        default = "message/rfc822" if content_type == "multipart/digest" else "text/plain"
        inner = (*boundaries, boundary)
        return tuple(
            self.entity(s, e, (*path, i), default, inner) for i, (s, e) in enumerate(spans, 1)
        )

    def delimiters(self, start: int, end: int, dash: bytes, where: str) -> list[tuple[int, int]]:
        """(start, end) of each body part between delimiter lines in raw[start:end].

        A delimiter line is CRLF "--" boundary, then "--" for the last one, then
        optional blanks (transport padding) and CRLF. The first delimiter may
        open the body with no CRLF before it (empty preamble). Lines that only
        start like a delimiter ("--boundaryX") are content; the regular
        expressions skip them in C, so a flood of near misses stays cheap.
        """
        raw = self.raw
        line = re.escape(dash) + rb"(--)?[ \t]*(\r\n|\Z)"
        opening, inside = re.compile(line), re.compile(rb"\r\n" + line)
        spans: list[tuple[int, int]] = []
        part_start = -1
        found = opening.match(raw, start, end) or inside.search(raw, start, end)
        while found is not None:
            closing = found.group(1) is not None
            if part_start >= 0:
                spans.append((part_start, found.start()))
                self.count(1)
            elif closing:
                raise RejectedError(malformed(f"multipart without body parts in part {where}"))
            if closing:
                return spans
            if not found.group(2):
                break  # a delimiter line cut off by the end of the entity
            part_start = found.end()
            if opening.match(raw, part_start, end):
                # Two delimiter lines sharing one CRLF: readers disagree on this.
                raise RejectedError(malformed(f"empty body part in part {where}"))
            found = inside.search(raw, part_start, end)
        if part_start < 0:
            raise RejectedError(malformed(f"multipart boundary not found in part {where}"))
        raise RejectedError(malformed(f"unterminated multipart in part {where}"))


def scan_structure(raw: bytes, limits: MimeLimits) -> Part:
    """The part tree of `raw`; raises RejectedError (malformed, too many, too deep)."""
    scan = _Scan(raw, limits)
    scan.count(1)
    return scan.entity(0, len(raw), (), "text/plain", ())

"""The transport envelope's MIME bytes: headers, cover, original, certificate.

Owns: writing one copy as `prefix + original + suffix` (RFC 5322 headers, RFC 2045/
2046 multipart bodies, RFC 2047 encoded Subject), CRLF everywhere, with boundaries
that never occur in the original. Must not: re-encode or even parse the original;
its bytes go into the message/rfc822 part verbatim (RFC 2046 §5.2.1).

Layout of a copy (Thunderbird shows the cover with its QR inline, then the original):

    multipart/mixed
      multipart/related            (RFC 2387; the QR is referenced as cid:, RFC 2392)
        multipart/alternative      text/plain + text/html, Arabic then English
        image/png                  qr.png, inline
      message/rfc822               original.eml, the original bytes untouched
      application/json             certificate.json
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Sequence
from email.header import Header

CRLF = b"\r\n"
MAX_LINE = 998  # RFC 5322 §2.1.1
_HEADER_UNSAFE = ("\r", "\n", "\x00")


class EnvelopeError(ValueError):
    """A value that cannot be written into a header safely (line break or NUL)."""


def header(name: str, value: str) -> bytes:
    """`Name: value` + CRLF; refuses line breaks and NUL (header injection)."""
    if any(ch in value for ch in _HEADER_UNSAFE):
        raise EnvelopeError(f"{name} value contains a line break or NUL")
    return f"{name}: {value}".encode() + CRLF


def encode_subject(text: str) -> str:
    """A Subject value: plain ASCII when possible, else RFC 2047 UTF-8 encoded-words.

    Line breaks in `text` become spaces; long values are folded (RFC 5322 §2.2.3).
    """
    flat = " ".join(text.replace("\r", " ").replace("\n", " ").replace("\x00", " ").split())
    charset = "us-ascii" if flat.isascii() else "utf-8"
    folded = Header(flat, charset, header_name="Subject").encode(linesep="\r\n")
    return str(folded)


def subject_header(text: str) -> bytes:
    """The whole `Subject:` field, possibly folded over several lines."""
    return b"Subject: " + encode_subject(text).encode("ascii") + CRLF


def base64_lines(data: bytes) -> bytes:
    """Base64 (RFC 2045 §6.8) in 76-character lines, each ending with CRLF."""
    return base64.encodebytes(data).replace(b"\n", CRLF)


def transfer_encoding_of(original: bytes) -> str:
    """The Content-Transfer-Encoding label that describes `original` as it is.

    RFC 2046 §5.2.1 allows only 7bit, 8bit or binary for message/rfc822: "7bit" for
    short-lined ASCII, "8bit" with 8-bit octets, "binary" when a line exceeds 998
    octets or a NUL occurs. The label describes the bytes; nothing is converted.
    """
    if b"\x00" in original or max(map(len, original.split(CRLF))) > MAX_LINE:
        return "binary"
    return "7bit" if original.isascii() else "8bit"


def new_boundary(original: bytes, avoid: Sequence[bytes] = ()) -> str:
    """A random boundary base that occurs neither in `original` nor in `avoid`.

    The envelope's boundaries are this base with distinct one-letter prefixes, so
    none is a prefix of another and none can appear inside the original.
    """
    while True:
        base = "barid." + secrets.token_urlsafe(18).replace("-", "x").replace("_", "y")
        raw = base.encode("ascii")
        if raw not in original and not any(raw in other for other in avoid):
            return base


def part_headers(*fields: tuple[str, str]) -> bytes:
    """Header lines of a body part, followed by the empty line."""
    return b"".join(header(name, value) for name, value in fields) + CRLF


def delimiter(boundary: str) -> bytes:
    """The line that opens a body part: CRLF, `--boundary`, CRLF (RFC 2046 §5.1.1)."""
    return b"\r\n--" + boundary.encode("ascii") + CRLF


def close_delimiter(boundary: str) -> bytes:
    return b"\r\n--" + boundary.encode("ascii") + b"--" + CRLF

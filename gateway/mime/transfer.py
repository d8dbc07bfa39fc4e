"""Content-Transfer-Encoding: from a part's body octets to its content octets.

Owns: strict base64 (RFC 2045 §6.8: only the alphabet, line breaks and blanks,
correct padding) and checked quoted-printable (§6.7). Must not: decode parts
nobody needs; callers decode documents and signatures only, once.
"""

from __future__ import annotations

import binascii
import re

from gateway.mime.verdicts import RejectedError, malformed

IDENTITY_ENCODINGS = frozenset({"7bit", "8bit", "binary"})
KNOWN_ENCODINGS = IDENTITY_ENCODINGS | {"base64", "quoted-printable"}

_B64_BLANKS = b" \t\r\n"
# '=' must start a soft line break or a hex octet; a final '=' is a soft break
# whose CRLF belongs to the next boundary delimiter (RFC 2046 §5.1.1).
_QP_BAD_ESCAPE = re.compile(rb"=(?![0-9A-Fa-f]{2}|\r\n|[ \t]*\r\n|[ \t]*\Z)")


def decode_body(body: bytes, encoding: str, where: str) -> bytes:
    """Decode `body` (octets between header section and delimiter) by `encoding`."""
    if encoding in IDENTITY_ENCODINGS:
        return body
    if encoding == "base64":
        try:  # strict: alphabet only, padding only at the end (RFC 4648 §3.3)
            return binascii.a2b_base64(body.translate(None, _B64_BLANKS), strict_mode=True)
        except binascii.Error:
            raise RejectedError(malformed(f"undecodable base64 in part {where}")) from None
    if encoding == "quoted-printable":
        if _QP_BAD_ESCAPE.search(body):
            raise RejectedError(malformed(f"undecodable quoted-printable in part {where}"))
        return binascii.a2b_qp(body)
    raise RejectedError(malformed(f"unknown transfer encoding in part {where}"))

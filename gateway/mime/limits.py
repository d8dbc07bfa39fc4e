"""Named limits for one message and the cheap byte scan that runs before parsing.

Owns: `MimeLimits` (each limit with its RFC or reason) and `precheck` (size,
bare CR, bare LF, NUL). Must not: parse MIME; part count, depth and header
sizes are enforced by the structure scanner, which stops at the first excess.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.mime.verdicts import Rejection, malformed, too_big


@dataclass(frozen=True, slots=True)
class MimeLimits:
    """Limits applied to every message (and to every encapsulated S/MIME entity).

    max_message_bytes: the SMTP SIZE limit (RFC 1870); over it -> 552 5.3.4.
    max_parts: MIME entities in the message, the top-level one included; a bound
        on work and on what a reader must click through -> 552 5.3.4.
    max_depth: nested multiparts (the top level is depth 0, its parts depth 1);
        like Postfix's mime_nesting_limit -> 552 5.3.4.
    max_line_length: octets in one header line without its CRLF; RFC 5322 §2.1.1
        says a line MUST NOT exceed 998 -> 550 5.6.0.
    max_header_bytes: one entity's header section; a sanity bound (RFC 5322 sets
        none) against header floods -> 552 5.3.4.
    max_header_fields: fields in one header section, same reason -> 552 5.3.4.
    """

    max_message_bytes: int = 25 * 1024 * 1024
    max_parts: int = 100
    max_depth: int = 10
    max_line_length: int = 998
    max_header_bytes: int = 64 * 1024
    max_header_fields: int = 500


def precheck(raw: bytes, limits: MimeLimits) -> Rejection | None:
    """Size and line-ending checks over the whole message, all C-speed counts.

    RFC 5322 §2.3 and RFC 5321 §2.3.8: CR and LF appear only together as CRLF;
    a bare CR or LF is how SMTP smuggling hides a second message. NUL is never
    allowed in a message (RFC 5322 §3.5, RFC 6152 excludes it from 8BITMIME).
    """
    if len(raw) > limits.max_message_bytes:
        return too_big("message too big")
    if b"\0" in raw:
        return malformed("NUL in message")
    crlf = raw.count(b"\r\n")
    if raw.count(b"\n") != crlf:
        return malformed("bare LF in message")
    if raw.count(b"\r") != crlf:
        return malformed("bare CR in message")
    return None

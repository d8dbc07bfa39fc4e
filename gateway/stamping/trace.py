"""Per-copy trace codes: which recipient's copy is this? (docs/CONTRACT.md §6).

Owns: computing, formatting and normalising the keyed code. Must not: store the
code-to-recipient mapping (the store does) nor see the master key itself.

A trace code is HMAC-SHA256 (RFC 2104) under a key derived for this purpose only
(`GatewayKeys.derive(TRACE_KEY_PURPOSE)`, HKDF per RFC 5869) over the registry
number and the recipient address; its first 50 bits are written as 10 Crockford
base32 characters in two groups, `XXXXX-XXXXX`. The alphabet has no I, L, O or U,
so a code read aloud or retyped survives the usual confusions (see `normalize`).

Guessing: without the key every code is an independent uniform 50-bit value (HMAC
is a PRF). Someone who wants to pass a copy off as another recipient's, or to
invent a plausible code, succeeds with probability k / 2**50 per try for a message
with k recipients: below 1e-12 even for k = 1,000.

Collisions: two recipients of one message share a code with probability at most
k**2 / 2**51 (4.4e-10 for k = 1,000); the Stamper then derives the colliding
recipient's code again with `attempt=1`, so codes are unique within a message.
Across the whole system, N copies give about N**2 / 2**51 colliding pairs (0.04
at ten million copies, 4 at a hundred million), so a lookup by code alone may
return more than one candidate copy, and (registry number, code) -- both printed
on every cover page -- always identifies exactly one.
"""

from __future__ import annotations

import hashlib
import hmac

TRACE_KEY_PURPOSE = "trace-code"
TRACE_BITS = 50
TRACE_CHARS = 10
CROCKFORD_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_CONTEXT = b"barid-trace/v1\x00"
_MIN_KEY_BYTES = 16
# Crockford's decoding rules: O reads as 0, I and L as 1; hyphens and spaces are layout.
_NORMALIZE = str.maketrans({"O": "0", "I": "1", "L": "1", "-": None, " ": None})


def trace_code(key: bytes, registry: str, recipient: str, attempt: int = 0) -> str:
    """The trace code of `recipient`'s copy of message `registry`, e.g. "7Q4MZ-K2D9X".

    Deterministic for (key, registry, lower-cased recipient, attempt); `attempt`
    is non-zero only to resolve a collision inside one message.
    """
    if len(key) < _MIN_KEY_BYTES:
        raise ValueError(f"trace key must be at least {_MIN_KEY_BYTES} bytes")
    if attempt < 0:
        raise ValueError("attempt must not be negative")
    message = b"".join(
        (
            _CONTEXT,
            registry.encode("utf-8"),
            b"\x00",
            recipient.strip().lower().encode("utf-8"),
            b"\x00" + attempt.to_bytes(4, "big") if attempt else b"",
        )
    )
    digest = hmac.new(key, message, hashlib.sha256).digest()
    value = int.from_bytes(digest[:8], "big") >> (64 - TRACE_BITS)
    chars = "".join(
        CROCKFORD_ALPHABET[(value >> shift) & 31] for shift in range(TRACE_BITS - 5, -1, -5)
    )
    return f"{chars[:5]}-{chars[5:]}"


def normalize(text: str) -> str | None:
    """The canonical `XXXXX-XXXXX` form of a typed code, or None if it is not one.

    Accepts lower case, missing or extra hyphens and spaces, and O/I/L for 0/1/1.
    """
    compact = text.strip().upper().translate(_NORMALIZE)
    if len(compact) != TRACE_CHARS or any(ch not in CROCKFORD_ALPHABET for ch in compact):
        return None
    return f"{compact[:5]}-{compact[5:]}"

"""One-time passwords for administrators: TOTP (RFC 6238) and recovery codes.

Owns: new TOTP secrets, the otpauth URI an authenticator app reads, which
time-step (if any) a code matches within the allowed drift, and the form of
recovery codes. Pure apart from the random source; the caller passes the time
in and stores, seals and consumes everything. Must not: remember used codes.
"""

from __future__ import annotations

import base64
import secrets
from urllib.parse import quote, urlencode

from cryptography.hazmat.primitives.hashes import SHA1
from cryptography.hazmat.primitives.twofactor import InvalidToken
from cryptography.hazmat.primitives.twofactor.totp import TOTP

SECRET_BYTES = 20  # 160 bits, the HMAC-SHA1 block RFC 4226 §4 recommends
DIGITS = 6
PERIOD = 30  # seconds per time-step (RFC 6238 §5.2 default)
DRIFT_STEPS = 1  # codes of the step before and after are accepted too
ISSUER = "Barid"
RECOVERY_CODES = 10
RECOVERY_BYTES = 10  # 80 bits, written as 16 base32 characters in 4 groups
_RECOVERY_ALPHABET = set("abcdefghijklmnopqrstuvwxyz234567")
# Arabic-Indic (U+0660..) and Eastern Arabic-Indic (U+06F0..) digits, as an Arabic
# keyboard types them, read as the ASCII digits they are.
_DIGITS = str.maketrans("٠١٢٣٤٥٦٧٨٩۰۱۲۳۴۵۶۷۸۹", "0123456789" * 2)


def new_secret() -> bytes:
    return secrets.token_bytes(SECRET_BYTES)


def _totp(secret: bytes) -> TOTP:
    # SHA-1 is what RFC 6238 and every authenticator app default to; it is used
    # here as HMAC-SHA1, which stays sound.
    return TOTP(secret, DIGITS, SHA1(), PERIOD, enforce_key_length=True)  # noqa: S303


def provisioning_uri(secret: bytes, account: str, issuer: str = ISSUER) -> str:
    """The `otpauth://totp/...` URI (Key Uri Format) for an authenticator app."""
    label = quote(f"{issuer}:{account}", safe="@:")
    query = urlencode(
        {
            "secret": base64.b32encode(secret).decode("ascii").rstrip("="),
            "issuer": issuer,
            "algorithm": "SHA1",
            "digits": DIGITS,
            "period": PERIOD,
        }
    )
    return f"otpauth://totp/{label}?{query}"


def normalize_code(text: str) -> str:
    """A typed TOTP code without spaces, with Arabic-Indic digits as ASCII ones."""
    return "".join(text.split()).translate(_DIGITS)


def is_totp_code(text: str) -> bool:
    """Six ASCII digits (after `normalize_code`)."""
    return len(text) == DIGITS and text.isascii() and text.isdigit()


def code_at(secret: bytes, when: float) -> str:
    """The code for Unix time `when` (for enrolment checks and tests)."""
    return _totp(secret).generate(int(when)).decode("ascii")


def matching_step(secret: bytes, code: str, now: float) -> int | None:
    """The time-step whose code `code` is, within DRIFT_STEPS of `now`; None if none."""
    code = normalize_code(code)
    if not is_totp_code(code):
        return None
    totp = _totp(secret)
    current = int(now) // PERIOD
    found = None
    for step in range(current - DRIFT_STEPS, current + DRIFT_STEPS + 1):
        try:
            totp.verify(code.encode("ascii"), step * PERIOD)
        except InvalidToken:
            continue
        found = step  # no early exit: the time taken does not depend on which step
    return found


def new_recovery_codes(count: int = RECOVERY_CODES) -> list[str]:
    """Fresh recovery codes, e.g. "k3qa-7xpm-ub2d-rr5t" (80 bits each)."""
    codes = []
    for _ in range(count):
        text = base64.b32encode(secrets.token_bytes(RECOVERY_BYTES)).decode("ascii").lower()
        codes.append("-".join(text[i : i + 4] for i in range(0, len(text), 4)))
    return codes


def normalize_recovery_code(text: str) -> str | None:
    """A typed recovery code without spaces, hyphens or case; None when it cannot be one."""
    cleaned = "".join(text.split()).replace("-", "").lower()
    if len(cleaned) != RECOVERY_BYTES * 8 // 5 or not set(cleaned) <= _RECOVERY_ALPHABET:
        return None
    return cleaned

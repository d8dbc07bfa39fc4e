"""The verdict of one signature verification: a status, who signed, and a short reason.

Owns: `SignatureStatus` (with the RFC 3463 reply it maps to) and `SignatureResult`.
Must not: verify anything, or carry exception text (reasons are shown to clients).
"""

from __future__ import annotations

import datetime
import enum
from dataclasses import dataclass

# Signatures dated this far after the verification time are still accepted:
# clients and gateway clocks drift.
CLOCK_SKEW = datetime.timedelta(minutes=15)


class SignatureStatus(enum.Enum):
    """What a verification concluded.

    MALFORMED maps to 554 5.7.5 rather than 550 5.6.0: the MIME structure was
    sound (the caller checked it) but the signature cannot be evaluated, which
    RFC 3463 §3.8 calls a cryptographic failure. 5.6.0 stays for malformed MIME.
    """

    VALID = "valid"
    BAD_SIGNATURE = "bad-signature"  # content changed, crypto fails, weak algorithm
    UNKNOWN_SIGNER = "unknown-signer"  # not made by one of the registered identities
    UNTRUSTED = "untrusted"  # chain, usage, expiry or revocation at `when` fails
    MALFORMED = "malformed"  # the signature cannot be parsed

    @property
    def reply(self) -> tuple[int, str]:
        """(SMTP code, RFC 3463 enhanced status code) for refusing a message."""
        return _REPLIES[self]


_REPLIES: dict[SignatureStatus, tuple[int, str]] = {
    SignatureStatus.VALID: (250, "2.0.0"),
    SignatureStatus.BAD_SIGNATURE: (554, "5.7.5"),
    SignatureStatus.UNKNOWN_SIGNER: (550, "5.7.1"),
    SignatureStatus.UNTRUSTED: (550, "5.7.1"),
    SignatureStatus.MALFORMED: (554, "5.7.5"),
}


@dataclass(frozen=True, slots=True)
class SignatureResult:
    """One verification's verdict.

    `signer_fingerprint` is upper-case hex, in the form registered identities use:
    the OpenPGP primary key fingerprint (also when a signing subkey signed), or
    the SHA-256 of the signer certificate's DER. It is set whenever the signer was
    identified, even if the verdict is not VALID. `employee_codes` and `addresses`
    are what the signer's key or certificate names (codes upper-cased, not checked
    here). `reason` is short ASCII, safe to show to a client.
    """

    status: SignatureStatus
    reason: str
    signer_fingerprint: str | None = None
    employee_codes: tuple[str, ...] = ()
    addresses: tuple[str, ...] = ()

    @property
    def valid(self) -> bool:
        return self.status is SignatureStatus.VALID


def failure(
    status: SignatureStatus, reason: str, fingerprint: str | None = None
) -> SignatureResult:
    """A non-VALID result; `reason` must be a fixed text, never exception text."""
    return SignatureResult(status=status, reason=reason, signer_fingerprint=fingerprint)


def check_when(when: datetime.datetime) -> None:
    """Refuse a naive `when`: validity times are compared in UTC (a caller error)."""
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError("`when` must be a timezone-aware datetime")

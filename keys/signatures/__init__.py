"""Signature verification for official mail: OpenPGP detached signatures and CMS/S/MIME.

Owns: the public entry points and the `SignatureResult` they return. Must not: find
signed parts in a message (the caller extracts the exact bytes), or raise on hostile
input: every failure is a result with a short client-safe reason.
"""

from keys.signatures.cms import verify_cms_attached, verify_cms_detached
from keys.signatures.openpgp import OpenPgpBackend, verify_openpgp_detached
from keys.signatures.result import SignatureResult, SignatureStatus

__all__ = [
    "OpenPgpBackend",
    "SignatureResult",
    "SignatureStatus",
    "verify_cms_attached",
    "verify_cms_detached",
    "verify_openpgp_detached",
]

"""Delivery evidence of summarised messages: a signed statement per delivered copy.

Owns: the statement a delivery of a summarised message leaves (canonical JSON:
format, registry number, SHA-256 of the original as received, recipient,
delivery time), its Ed25519 signature by the gateway's token signing key
(`EvidenceSigner`, stored as "<key id>:<base64>" in `receipt_jobs.evidence`) and
the check of one against the gateway's current and retired verification keys.
Must not: read the store (callers pass the facts) or the clock.

Why a statement and not a filed receipt: a circular to hundreds of agencies
would otherwise put hundreds of receipts in the sender's Receipts folder, each
rendered, DKIM-signed, described and stored (about 12 kB, and over 20 ms, a
copy). The statement costs one Ed25519 signature (about 0.1 ms) and 100 bytes,
is signed when the copy is delivered, and `barid receipts evidence` turns it
back into the full delivery receipt on request.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519

FORMAT = "barid-delivery-evidence/1"
_CONTEXT = b"barid delivery evidence\n"  # domain separation from tokens


def statement(registry: str, message_sha256: str, recipient: str, delivered_at: str) -> bytes:
    """The canonical bytes signed for one delivered copy."""
    return json.dumps(
        {
            "format": FORMAT,
            "registry": registry,
            "message_sha256": message_sha256,
            "recipient": recipient,
            "delivered_at": delivered_at,
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=True,
    ).encode("ascii")


@dataclass(frozen=True)
class EvidenceSigner:
    key: ed25519.Ed25519PrivateKey
    key_id: str

    def sign(self, signed: bytes) -> str:
        """ "<key id>:<base64 Ed25519 signature>" of a statement."""
        signature = self.key.sign(_CONTEXT + signed)
        return f"{self.key_id}:{base64.b64encode(signature).decode('ascii')}"


def verify(evidence: str, signed: bytes, keys: Mapping[str, ed25519.Ed25519PublicKey]) -> bool:
    """Whether `evidence` is a signature of `signed` by one of `keys` (by key id)."""
    key_id, _, encoded = evidence.partition(":")
    key = keys.get(key_id)
    if key is None:
        return False
    try:
        key.verify(base64.b64decode(encoded, validate=True), _CONTEXT + signed)
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True

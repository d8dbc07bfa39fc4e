"""Key material a cluster of nodes shares through its database: pure functions.

Owns: the master-key check value (proves two nodes hold the same master key
without revealing it) and sealing a token signing key's private part with the
master key so the database can carry it to every node. Must not: do I/O.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from keys.gateway_keys import derive_key, key_id

KEY_CHECK_PURPOSE = "key-check"
KEY_CHECK_MESSAGE = b"barid key check v1"
SEAL_PURPOSE = "signing-key-seal"
_NONCE_BYTES = 12


class SealError(Exception):
    """A sealed signing key does not open with this master key (or was altered)."""


def key_check_value(master: bytes) -> str:
    """HMAC-SHA256(HKDF(master, "key-check"), "barid key check v1"), in hex.

    Equal on two nodes exactly when their master keys are equal; reveals nothing
    usable about the key (a one-way function of a subkey used for nothing else).
    """
    return hmac.new(
        derive_key(master, KEY_CHECK_PURPOSE), KEY_CHECK_MESSAGE, hashlib.sha256
    ).hexdigest()


def _aad(kid: str) -> bytes:
    return b"barid signing key v1 " + kid.encode("ascii")


def public_raw(key: ed25519.Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def seal_signing_key(master: bytes, private: ed25519.Ed25519PrivateKey) -> bytes:
    """nonce(12) + AES-256-GCM(raw private key), bound to the key's id."""
    raw = private.private_bytes(
        serialization.Encoding.Raw,
        serialization.PrivateFormat.Raw,
        serialization.NoEncryption(),
    )
    nonce = secrets.token_bytes(_NONCE_BYTES)
    kid = key_id(private.public_key())
    return nonce + AESGCM(derive_key(master, SEAL_PURPOSE)).encrypt(nonce, raw, _aad(kid))


def open_signing_key(master: bytes, kid: str, sealed: bytes) -> ed25519.Ed25519PrivateKey:
    """The private key sealed by `seal_signing_key`; SealError unless it opens and its
    public key has id `kid`."""
    try:
        raw = AESGCM(derive_key(master, SEAL_PURPOSE)).decrypt(
            sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:], _aad(kid)
        )
        private = ed25519.Ed25519PrivateKey.from_private_bytes(raw)
    except (InvalidTag, ValueError):
        raise SealError(f"signing key {kid} does not open with this node's master key") from None
    if key_id(private.public_key()) != kid:
        raise SealError(f"signing key {kid} does not match its id")
    return private

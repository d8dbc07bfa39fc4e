"""The cluster key bundle: a passphrase-encrypted file carrying a node's key material.

Owns: the byte format and its encryption. Must not: know what the payload holds
(admin.cluster_bundle does) or touch files.

Format version 1 (integers big-endian):

    magic "BARIDKEYBUNDLE" (14) version(1) scrypt log2(N)(1) r(1) p(1)
    salt(16) nonce(12) ciphertext+tag

The key is scrypt(passphrase UTF-8, salt, N, r, p, 32 bytes); the ciphertext is
AES-256-GCM over the payload (UTF-8 JSON) with the whole header (magic to nonce)
as associated data, so a changed header (version, cost) fails like a wrong
passphrase. Cost parameters outside the accepted range are refused before any
work is done (a crafted file cannot make the reader spend gigabytes).
"""

from __future__ import annotations

import json
import secrets
import struct
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

MAGIC = b"BARIDKEYBUNDLE"
FORMAT_VERSION = 1
SCRYPT_LOG2_N, SCRYPT_R, SCRYPT_P = 15, 8, 1
_MAX_LOG2_N = 20
_HEAD = struct.Struct(f">{len(MAGIC)}sBBBB16s12s")
MIN_PASSPHRASE_CHARS = 12


class BundleError(Exception):
    """The bundle cannot be opened; the message is one line and holds no secret."""


def _key(passphrase: str, salt: bytes, log2_n: int, r: int, p: int) -> bytes:
    kdf = Scrypt(salt=salt, length=32, n=2**log2_n, r=r, p=p)
    return kdf.derive(passphrase.encode("utf-8"))


def seal_bundle(payload: dict[str, Any], passphrase: str, *, log2_n: int = SCRYPT_LOG2_N) -> bytes:
    """The encrypted bundle of `payload` (JSON-serialisable)."""
    if len(passphrase) < MIN_PASSPHRASE_CHARS:
        raise BundleError(f"the passphrase must have at least {MIN_PASSPHRASE_CHARS} characters")
    salt, nonce = secrets.token_bytes(16), secrets.token_bytes(12)
    head = _HEAD.pack(MAGIC, FORMAT_VERSION, log2_n, SCRYPT_R, SCRYPT_P, salt, nonce)
    key = _key(passphrase, salt, log2_n, SCRYPT_R, SCRYPT_P)
    body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode("utf-8")
    return head + AESGCM(key).encrypt(nonce, body, head)


def open_bundle(data: bytes, passphrase: str) -> dict[str, Any]:
    """The payload of a bundle; BundleError when it is not one, is damaged or
    truncated, or the passphrase is wrong (the last three cannot be told apart)."""
    if len(data) < _HEAD.size + 16 or not data.startswith(MAGIC):
        raise BundleError("not a Barid key bundle (or truncated)")
    _magic, version, log2_n, r, p, salt, nonce = _HEAD.unpack_from(data)
    if version != FORMAT_VERSION:
        raise BundleError(f"key bundle format {version} is not supported (expected 1)")
    if not (10 <= log2_n <= _MAX_LOG2_N and 1 <= r <= 32 and 1 <= p <= 16):
        raise BundleError("key bundle header is damaged")
    key = _key(passphrase, salt, log2_n, r, p)
    try:
        body = AESGCM(key).decrypt(nonce, data[_HEAD.size :], data[: _HEAD.size])
    except InvalidTag:
        raise BundleError("wrong passphrase, or the key bundle is damaged or truncated") from None
    try:
        payload = json.loads(body.decode("utf-8"))
    except ValueError:
        raise BundleError("key bundle content is not valid") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT_VERSION:
        raise BundleError("key bundle content is not valid")
    return payload

"""Encryption at rest for message bytes: AES-256-GCM blobs stored inside the database.

Owns: sealing and opening blob bytes, and writing/reading `blobs` rows in the
caller's transaction. Must not: commit, keep bytes in files, or log plaintext or keys.

Scheme (v1). Each blob gets a fresh random 256-bit data key and a random 96-bit
nonce; the plaintext is encrypted with AES-256-GCM. The data key is wrapped with
AES-256-GCM under the key-encryption key (KEK, `derive_key(master, "blob-kek")`)
with its own random nonce; `wrapped_key` holds that nonce followed by the
encrypted key and tag (12 + 32 + 16 bytes). GCM wrapping was chosen over RFC 3394/5649
key wrap because it takes associated data: both encryptions authenticate
`blob_aad(id, purpose)`, so a ciphertext, a wrapped key or a whole row copied
onto another row id (or relabelled with another purpose) fails to open instead
of silently returning another message's bytes. After decryption the plaintext's
size and SHA-256 are compared with the row. One KEK wraps one key per blob with a
random nonce: far below the 2^32 messages NIST SP 800-38D allows per key.

Why in the database, not in files. docs/CONTRACT.md §5 asks that blobs be fsynced before
the commit that acknowledges a message. Keeping the ciphertext in a LargeBinary
column gives that and more: the blob is written by the same commit as the rows
that refer to it, and that commit is the fsync (SQLite WAL with
synchronous=FULL; PostgreSQL's WAL flush on commit). A crash can leave neither
an orphan file nor a message row whose file is missing or half-written, several
gateway nodes sharing one PostgreSQL see the same blobs, and backups of the
database are complete.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.store.db import utcnow
from gateway.store.models import Blob

BLOB_KEK_PURPOSE = "blob-kek"  # HKDF purpose of the KEK (keys.gateway_keys.derive_key)
NONCE_BYTES = 12
DATA_KEY_BITS = 256
_AAD_PREFIX = b"barid/blob/v1"
_WRAP_LABEL = b"barid/blob-key/v1"
_KEK_ID_LABEL = b"barid/blob-kek-id/v1"


class BlobError(Exception):
    """A blob that cannot be returned. The message never contains blob bytes."""


class BlobNotFound(BlobError):
    pass


class BlobIntegrityError(BlobError):
    """Decryption or the digest check failed: tampered, swapped or another master key."""


def blob_aad(blob_id: str, purpose: str) -> bytes:
    """The associated data binding a blob's ciphertext and wrapped key to its row."""
    return b"\x00".join((_AAD_PREFIX, blob_id.encode("ascii"), purpose.encode("ascii")))


class BlobCipher:
    """Seals and opens blob bytes under one KEK. Holds no plaintext; `repr` shows no key."""

    __slots__ = ("_kek", "kek_id")

    def __init__(self, kek: bytes) -> None:
        if len(kek) != DATA_KEY_BITS // 8:
            raise ValueError("the blob key-encryption key must be 32 bytes")
        self._kek = AESGCM(kek)
        # Names the KEK without revealing it, so "sealed under another master key"
        # can be told apart from tampering.
        self.kek_id = hmac.new(kek, _KEK_ID_LABEL, hashlib.sha256).hexdigest()[:16]

    def __repr__(self) -> str:
        return f"BlobCipher(kek_id={self.kek_id!r})"

    def seal(self, plaintext: bytes, aad: bytes) -> tuple[bytes, bytes, bytes]:
        """Encrypt under a fresh data key: (nonce, wrapped_key, ciphertext)."""
        data_key = AESGCM.generate_key(bit_length=DATA_KEY_BITS)
        nonce = os.urandom(NONCE_BYTES)
        ciphertext = AESGCM(data_key).encrypt(nonce, plaintext, aad)
        key_nonce = os.urandom(NONCE_BYTES)
        wrapped = key_nonce + self._kek.encrypt(key_nonce, data_key, _WRAP_LABEL + aad)
        return nonce, wrapped, ciphertext

    def open(self, nonce: bytes, wrapped_key: bytes, ciphertext: bytes, aad: bytes) -> bytes:
        """Decrypt what `seal` returned for the same `aad`; BlobIntegrityError otherwise."""
        if len(wrapped_key) <= NONCE_BYTES or len(nonce) != NONCE_BYTES:
            raise BlobIntegrityError("blob key material is malformed")
        key_nonce, wrapped = wrapped_key[:NONCE_BYTES], wrapped_key[NONCE_BYTES:]
        try:
            data_key = self._kek.decrypt(key_nonce, wrapped, _WRAP_LABEL + aad)
            return AESGCM(data_key).decrypt(nonce, ciphertext, aad)
        except (InvalidTag, ValueError):
            raise BlobIntegrityError("blob failed authentication") from None


def new_blob_id() -> str:
    """128 random bits, hex: known before sealing, so the id can be bound into the AAD."""
    return secrets.token_hex(16)


def seal_blob(cipher: BlobCipher, data: bytes, *, purpose: str) -> Blob:
    """A new, unsaved `blobs` row holding `data` encrypted. Pure CPU: safe to call early."""
    blob_id = new_blob_id()
    nonce, wrapped_key, ciphertext = cipher.seal(data, blob_aad(blob_id, purpose))
    return Blob(
        id=blob_id,
        purpose=purpose,
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
        kek_id=cipher.kek_id,
        nonce=nonce,
        wrapped_key=wrapped_key,
        ciphertext=ciphertext,
        created_at=utcnow(),
    )


def open_blob(cipher: BlobCipher, blob: Blob) -> bytes:
    """Decrypt a loaded row and check its size and digest; BlobIntegrityError otherwise."""
    if blob.kek_id != cipher.kek_id:
        raise BlobIntegrityError(f"blob {blob.id} was sealed under another key ({blob.kek_id})")
    data = cipher.open(
        blob.nonce, blob.wrapped_key, blob.ciphertext, blob_aad(blob.id, blob.purpose)
    )
    if len(data) != blob.size or not hmac.compare_digest(
        hashlib.sha256(data).hexdigest(), blob.sha256
    ):
        raise BlobIntegrityError(f"blob {blob.id} does not match its recorded digest")
    return data


def put_blob(session: AsyncSession, cipher: BlobCipher, data: bytes, *, purpose: str) -> str:
    """Seal `data` and add its row to the session (written at the next flush); its id."""
    blob = seal_blob(cipher, data, purpose=purpose)
    session.add(blob)
    return blob.id


async def read_blob(session: AsyncSession, cipher: BlobCipher, blob_id: str) -> bytes:
    """The plaintext of blob `blob_id`; BlobNotFound or BlobIntegrityError."""
    blob = await session.get(Blob, blob_id)
    if blob is None:
        raise BlobNotFound(f"blob {blob_id} not found")
    return open_blob(cipher, blob)

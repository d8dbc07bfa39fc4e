"""Encryption at rest for message bytes: AES-256-GCM blobs, in the database or a blob store.

Owns: sealing and opening blob bytes, writing/reading `blobs` rows in the
caller's transaction, and moving a sealed blob's ciphertext to the configured
store (`store_outside`, before the commit) and back (`fetch_outside`). Must not:
commit, or log plaintext, ciphertext or keys.

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
A blob sealed with `deflate` (a copy's prefix and suffix: headers, cover,
certificate.json) holds its plaintext zlib-compressed when that is smaller; the
row keeps the plaintext's size and SHA-256, so a decrypted payload shorter than
the size is inflated (never past the size) before the same check.

Why in the database, not in files. docs/CONTRACT.md §5 asks that blobs be fsynced before
the commit that acknowledges a message. Keeping the ciphertext in a LargeBinary
column gives that and more: the blob is written by the same commit as the rows
that refer to it, and that commit is the fsync (SQLite WAL with
synchronous=FULL; PostgreSQL's WAL flush on commit). A crash can leave neither
an orphan file nor a message row whose file is missing or half-written, several
gateway nodes sharing one PostgreSQL see the same blobs, and backups of the
database are complete.

Outside the database (gateway.store.blobstore, issue of scale: terabytes of
documents make multi-terabyte database backups). With the filesystem or S3
backend, a blob whose ciphertext is larger than `[blobs] inline_max_bytes` is
written to the store, durably and checked against its SHA-256, BEFORE the commit
of the row that references it; the row keeps the nonce, the wrapped key, the
digests and `location`, with an empty `ciphertext`. A crash between the write
and the commit leaves an orphan object, which the collector (blobstore.gc)
removes after a grace period; it can never leave a row without its object.
Reading checks the object's SHA-256 (`location_sha256`) and then, as always,
the GCM tags and the plaintext digest.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import os
import secrets
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, fields
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from gateway.store.blobstore import DATABASE_ONLY, BlobStoreError, BlobStores, object_key
from gateway.store.db import utcnow
from gateway.store.errors import StoreUnavailable
from gateway.store.models import Blob

log = logging.getLogger("barid.blobs")

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
    """Seals and opens blob bytes under one KEK. Holds no plaintext; `repr` shows no key.

    `stores` says where ciphertext larger than the inline threshold lives (default:
    the database); it travels with the cipher so every reader and writer sees it."""

    __slots__ = ("_kek", "kek_id", "stores")

    def __init__(self, kek: bytes, stores: BlobStores = DATABASE_ONLY) -> None:
        self.stores = stores
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


def seal_blob(cipher: BlobCipher, data: bytes, *, purpose: str, deflate: bool = False) -> Blob:
    """A new, unsaved `blobs` row holding `data` encrypted. Pure CPU: safe to call early.

    `deflate`: compress before encrypting when that makes it smaller (text such as a
    copy's cover); the row's size and SHA-256 stay those of `data`, and a decrypted
    payload shorter than the size is what tells `open_blob` to inflate it.
    """
    blob_id = new_blob_id()
    payload = data
    if deflate:
        packed = zlib.compress(data, 6)
        if len(packed) < len(data):
            payload = packed
    nonce, wrapped_key, ciphertext = cipher.seal(payload, blob_aad(blob_id, purpose))
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


@dataclass(slots=True)
class BlobValues:
    """A blob row read as plain columns (`BLOB_COLUMNS`), no ORM object made: what
    `open_blob` and `fetch_outside` read, on the hot read paths."""

    id: str
    purpose: str
    sha256: str
    size: int
    kek_id: str
    nonce: bytes
    wrapped_key: bytes
    ciphertext: bytes
    location: str | None
    location_sha256: str | None

    @classmethod
    def of(cls, row: Any) -> BlobValues:
        return cls(*(getattr(row, name) for name in _VALUE_NAMES))


_VALUE_NAMES = tuple(f.name for f in fields(BlobValues))
# Select these (e.g. beside other columns) and build BlobValues.of(row).
BLOB_COLUMNS = tuple(getattr(Blob, name) for name in _VALUE_NAMES)


def open_blob(cipher: BlobCipher, blob: Blob | BlobValues) -> bytes:
    """Decrypt a loaded row and check its size and digest; BlobIntegrityError otherwise."""
    if blob.location is not None and not blob.ciphertext:
        raise BlobError(f"blob {blob.id} lives in a blob store: fetch_outside it first")
    if blob.kek_id != cipher.kek_id:
        raise BlobIntegrityError(f"blob {blob.id} was sealed under another key ({blob.kek_id})")
    data = cipher.open(
        blob.nonce, blob.wrapped_key, blob.ciphertext, blob_aad(blob.id, blob.purpose)
    )
    if len(data) < blob.size:  # sealed with `deflate`
        data = _inflate(blob.id, data, blob.size)
    if len(data) != blob.size or not hmac.compare_digest(
        hashlib.sha256(data).hexdigest(), blob.sha256
    ):
        raise BlobIntegrityError(f"blob {blob.id} does not match its recorded digest")
    return data


def _inflate(blob_id: str, packed: bytes, size: int) -> bytes:
    """A deflated payload back, never more than `size` bytes."""
    inflater = zlib.decompressobj()
    try:
        data = inflater.decompress(packed, size + 1)
    except zlib.error:
        raise BlobIntegrityError(f"blob {blob_id} does not match its recorded digest") from None
    if not inflater.eof or inflater.unconsumed_tail:
        raise BlobIntegrityError(f"blob {blob_id} does not match its recorded digest")
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
    await fetch_outside(cipher, [blob])
    return open_blob(cipher, blob)


class BlobUnavailable(BlobError, StoreUnavailable):
    """The blob store could not be reached or refused: try again later. A
    StoreUnavailable too, so every caller answers it like a database outage
    (SMTP 451 4.3.0, IMAP NO [UNAVAILABLE], delivery retried); `detail` is for logs."""

    def __init__(self, detail: str) -> None:
        StoreUnavailable.__init__(self)
        self.detail = detail


async def store_outside(cipher: BlobCipher, blobs: Iterable[Blob]) -> None:
    """Write the ciphertext of each new (unsaved) blob over the inline threshold to
    the configured store, durably and verified, and leave the row pointing at it.
    Call BEFORE the commit that references them; BlobUnavailable if the store fails."""
    stores = cipher.stores
    for blob in blobs:
        if blob.location is not None or not stores.goes_outside(len(blob.ciphertext)):
            continue
        assert stores.write is not None
        key = object_key(blob.id)
        digest = hashlib.sha256(blob.ciphertext).hexdigest()
        try:
            await stores.write.put(key, blob.ciphertext, digest)
        except BlobStoreError as exc:
            log.error("blob store unavailable", extra={"operation": "put", "detail": str(exc)})
            raise BlobUnavailable(str(exc)) from None
        blob.location = f"{stores.write.scheme}:{key}"
        blob.location_sha256 = digest
        blob.ciphertext = b""


async def _fetch_one(stores: BlobStores, blob: Blob | BlobValues) -> None:
    assert blob.location is not None
    try:
        store, key = stores.resolve(blob.location)
        data = await store.get(key)
    except BlobStoreError as exc:
        log.error("blob store unavailable", extra={"operation": "get", "detail": str(exc)})
        raise BlobUnavailable(str(exc)) from None
    if not hmac.compare_digest(hashlib.sha256(data).hexdigest(), blob.location_sha256 or ""):
        raise BlobIntegrityError(f"blob {blob.id}: the stored object does not match its digest")
    if isinstance(blob, Blob):
        # Loaded, not changed: a later flush must not write the bytes into the row.
        set_committed_value(blob, "ciphertext", data)
    else:  # BlobValues, read as plain columns
        blob.ciphertext = data


async def fetch_outside(cipher: BlobCipher, blobs: Iterable[Blob | BlobValues]) -> None:
    """Bring the ciphertext of located blobs into their (loaded) rows, checked against
    `location_sha256`; then `open_blob` works as for inline rows."""
    wanted = [b for b in blobs if b.location is not None and not b.ciphertext]
    if wanted:
        await asyncio.gather(*(_fetch_one(cipher.stores, b) for b in wanted))

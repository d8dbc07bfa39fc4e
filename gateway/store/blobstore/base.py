"""The `BlobStore` interface: where the ciphertext of large blobs lives outside the database.

Owns: the Protocol every backend implements, its error type and the object key
naming. Must not: see plaintext or keys (a store only ever holds ciphertext that
gateway.store.blobs sealed), or log object contents.

Failure behaviour: every backend raises `BlobStoreError` (safe to log, never holds
bytes) for a fault of the store itself; a missing object is `BlobStoreMissing`.
A `put` returns only once the object is durable and verified against its SHA-256:
callers write objects BEFORE the commit that references them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


class BlobStoreError(Exception):
    """The object store failed (unreachable, refused, or returned other bytes)."""


class BlobStoreMissing(BlobStoreError):
    """No object under that key."""


@dataclass(frozen=True, slots=True)
class StoredObject:
    """One object as a listing shows it: its key and last-modified time (Unix seconds)."""

    key: str
    modified: float


@runtime_checkable
class BlobStore(Protocol):
    """Holds ciphertext objects under keys; `scheme` prefixes `blobs.location`."""

    scheme: str
    max_object_bytes: int

    async def put(self, key: str, data: bytes, sha256: str) -> None:
        """Store `data` durably under `key`, checked against `sha256` (hex)."""

    async def get(self, key: str) -> bytes:
        """The bytes under `key`; BlobStoreMissing if there are none."""

    async def delete(self, key: str) -> None:
        """Remove `key`; no error if it is already gone."""

    def list(self) -> AsyncIterator[StoredObject]:
        """Every object, in any order (the garbage collector's view)."""

    async def close(self) -> None:
        """Release connections."""


def object_key(blob_id: str) -> str:
    """The object key of blob `blob_id` (hex): fanned out by its first two characters."""
    if not blob_id or not all(c in "0123456789abcdef" for c in blob_id):
        raise ValueError("a blob id is lower-case hex")
    return f"{blob_id[:2]}/{blob_id}"

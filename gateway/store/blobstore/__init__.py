"""Blob stores outside the database, chosen by the `[blobs]` configuration.

Owns: `BlobStores` (the store new large blobs go to, every configured store by
the scheme its `blobs.location` values carry, and the inline threshold) and
building it from the settings, credentials included. Must not: seal or open
blobs (gateway.store.blobs does), or log credentials.

A location is "<scheme>:<key>" ("fs:ab/ab12…", "s3:ab/ab12…"); NULL means the
ciphertext is in the row. Stores for both schemes are built when configured, so
rows written under a previous backend keep reading while `barid blobs migrate`
moves them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from gateway.store.blobstore.base import (
    BlobStore,
    BlobStoreError,
    BlobStoreMissing,
    StoredObject,
    object_key,
)
from gateway.store.blobstore.filesystem import FilesystemBlobStore
from gateway.store.blobstore.sigv4 import Credentials

if TYPE_CHECKING:
    from gateway.config.settings import Settings

__all__ = [
    "BlobStore",
    "BlobStoreError",
    "BlobStoreMissing",
    "BlobStores",
    "StoredObject",
    "object_key",
    "stores_from_settings",
]

ACCESS_KEY_ENV = "BARID_S3_ACCESS_KEY"
SECRET_KEY_ENV = "BARID_S3_SECRET_KEY"  # noqa: S105 - a variable name, not a secret


@dataclass(frozen=True, slots=True)
class BlobStores:
    """Where blobs go (`write`; None: the database) and where located ones are read."""

    write: BlobStore | None = None
    inline_max: int = 0
    by_scheme: dict[str, BlobStore] = field(default_factory=dict)

    def goes_outside(self, ciphertext_size: int) -> bool:
        return self.write is not None and ciphertext_size > self.inline_max

    def resolve(self, location: str) -> tuple[BlobStore, str]:
        """The store and key of `location`; BlobStoreError if that store is not configured."""
        scheme, _, key = location.partition(":")
        store = self.by_scheme.get(scheme)
        if store is None or not key:
            raise BlobStoreError(f"no configured blob store for location scheme {scheme!r}")
        return store, key

    async def close(self) -> None:
        for store in self.by_scheme.values():
            await store.close()


DATABASE_ONLY = BlobStores()


def read_credentials(path: str) -> Credentials:
    """S3 keys from `path` ("access_key = …" / "secret_key = …") or the environment."""
    values: dict[str, str] = {}
    if path:
        try:
            text = Path(path).expanduser().read_text(encoding="utf-8")
        except OSError as exc:
            raise BlobStoreError(f"cannot read S3 credentials file: {exc.strerror}") from None
        for line in text.splitlines():
            name, sep, value = line.partition("=")
            if sep:
                values[name.strip()] = value.strip().strip('"')
    access = values.get("access_key") or os.environ.get(ACCESS_KEY_ENV, "")
    secret = values.get("secret_key") or os.environ.get(SECRET_KEY_ENV, "")
    if not access or not secret:
        raise BlobStoreError(
            f"S3 credentials missing: set {ACCESS_KEY_ENV} and {SECRET_KEY_ENV}"
            " or [blobs] s3_credentials_file"
        )
    return Credentials(access, secret)


def stores_from_settings(settings: Settings) -> BlobStores:
    """The configured stores; BlobStoreError names what is missing."""
    conf = settings.blobs
    by_scheme: dict[str, BlobStore] = {}
    if conf.backend == "filesystem" or conf.path or settings.blobs_dir.is_dir():
        by_scheme["fs"] = FilesystemBlobStore(settings.blobs_dir)
    if conf.backend == "s3" or conf.s3_endpoint:
        if not conf.s3_endpoint:
            raise BlobStoreError('[blobs] backend = "s3" needs s3_endpoint')
        creds = read_credentials(conf.s3_credentials_file)
        creds = Credentials(creds.access_key, creds.secret_key, conf.s3_region)
        # Imported here: its HTTP client is needed only with an S3 store configured.
        from gateway.store.blobstore.s3 import S3BlobStore

        by_scheme["s3"] = S3BlobStore(
            conf.s3_endpoint, conf.s3_bucket, creds, prefix=conf.s3_prefix
        )
    write = {"filesystem": by_scheme.get("fs"), "s3": by_scheme.get("s3")}.get(conf.backend)
    return BlobStores(write=write, inline_max=conf.inline_max_bytes, by_scheme=by_scheme)

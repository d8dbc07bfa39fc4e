"""`barid blobs migrate --to BACKEND`: move existing blobs between the database and stores.

Owns: choosing the rows not yet where BACKEND keeps them, copying each one's
ciphertext, verifying the copy (read back, SHA-256) before switching the row,
and progress callbacks. Must not: delete the source object (the row no longer
references it; the collector removes it after the grace period), or move a blob
that fails to open (it is counted and left as it is).

Resumable: each row is switched in its own short transaction, guarded by its
old location, so an interrupted run (or a concurrent writer) leaves every row
either where it was or where it is going, and a rerun continues with the rest.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.sql.elements import ColumnElement

from gateway.store.blobs import BlobCipher, BlobError, fetch_outside, open_blob
from gateway.store.blobstore import BlobStore, BlobStoreError, object_key
from gateway.store.models import Blob

BACKEND_SCHEMES = {"database": None, "filesystem": "fs", "s3": "s3"}
BATCH = 50


@dataclass(slots=True)
class MigrateReport:
    total: int = 0
    moved: int = 0
    failed: int = 0


def _pending(scheme: str | None, inline_max: int) -> ColumnElement[bool]:
    """Rows not yet where the target keeps them."""
    if scheme is None:
        return Blob.location.is_not(None)
    return or_(
        and_(Blob.location.is_(None), func.length(Blob.ciphertext) > inline_max),
        and_(Blob.location.is_not(None), ~Blob.location.startswith(f"{scheme}:")),
    )


async def _copy(cipher: BlobCipher, blob: Blob, target: BlobStore | None) -> dict[str, object]:
    """The new column values of `blob` once its ciphertext is verified at `target`."""
    await fetch_outside(cipher, [blob])
    open_blob(cipher, blob)  # never move bytes that do not open
    data = blob.ciphertext
    if target is None:
        return {"ciphertext": data, "location": None, "location_sha256": None}
    key = object_key(blob.id)
    digest = hashlib.sha256(data).hexdigest()
    await target.put(key, data, digest)
    if hashlib.sha256(await target.get(key)).hexdigest() != digest:
        raise BlobStoreError(f"object {key} did not read back as written")
    return {"ciphertext": b"", "location": f"{target.scheme}:{key}", "location_sha256": digest}


async def migrate_blobs(
    sessions: async_sessionmaker[AsyncSession],
    cipher: BlobCipher,
    backend: str,
    *,
    progress: Callable[[MigrateReport], None] = lambda _r: None,
) -> MigrateReport:
    """Move every blob (over the inline threshold) to `backend`; a MigrateReport."""
    scheme = BACKEND_SCHEMES[backend]
    target = None if scheme is None else cipher.stores.by_scheme.get(scheme)
    if scheme is not None and target is None:
        raise BlobStoreError(f"the {backend} backend is not configured in [blobs]")
    pending = _pending(scheme, cipher.stores.inline_max)
    report = MigrateReport()
    async with sessions() as session:
        report.total = int(await session.scalar(select(func.count()).where(pending)) or 0)
    progress(report)
    last = ""
    while True:
        async with sessions() as session:
            rows = list(
                await session.scalars(
                    select(Blob).where(pending, Blob.id > last).order_by(Blob.id).limit(BATCH)
                )
            )
        if not rows:
            return report
        for blob in rows:
            last = blob.id
            old_location = blob.location
            try:
                values = await _copy(cipher, blob, target)
            except (BlobError, BlobStoreError):
                report.failed += 1
                progress(report)
                continue
            guard = (
                Blob.location.is_(None) if old_location is None else Blob.location == old_location
            )
            async with sessions() as session, session.begin():
                await session.execute(update(Blob).where(Blob.id == blob.id, guard).values(values))
            report.moved += 1
            progress(report)

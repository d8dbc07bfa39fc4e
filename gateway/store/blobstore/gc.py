"""The one garbage collector of blob stores: removes objects no `blobs` row references.

Owns: listing every configured store, asking the database which listed objects
rows still reference, and deleting the others once older than the grace period;
the lock that makes it one collector (PostgreSQL: `pg_try_advisory_lock`, held on
one connection for the run; SQLite: an exclusive `flock` on a file next to the
database); the periodic task `barid serve` runs. Must not: delete a referenced
object, an object younger than the grace period, or anything synchronously when
a message is deleted (deleting rows only makes their objects unreferenced).

Why a grace period: a large blob is written before the commit that references
it; until that commit, the object is unreferenced. The grace period (default 1 h)
must exceed the longest write-to-commit interval (seconds in practice), so only
objects whose commit never came (a crash, a refused submission) are removed.

Failure behaviour: a store or database fault ends the run with the error logged
(class name and message, never bytes); the periodic task keeps running.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from gateway.store.blobstore import BlobStore, BlobStoreError, BlobStores, StoredObject
from gateway.store.blobstore.filesystem import TEMP_PREFIX, FilesystemBlobStore
from gateway.store.models import Blob

log = logging.getLogger("barid.blobs")

GC_LOCK_KEY = 0x62617269_64474300 & 0x7FFFFFFFFFFFFFFF  # "baridGC\0", one advisory lock id
PAGE = 500


@dataclass(slots=True)
class GcReport:
    ran: bool = True  # False: another collector held the lock
    listed: int = 0
    kept_young: int = 0
    referenced: int = 0
    removed: int = 0


@contextlib.asynccontextmanager
async def collector_lock(engine: AsyncEngine, lock_path: Path) -> AsyncIterator[bool]:
    """True while this process is the one collector; False if another one is."""
    if engine.dialect.name == "postgresql":
        async with engine.connect() as conn:
            got = bool(
                await conn.scalar(text("SELECT pg_try_advisory_lock(:k)"), {"k": GC_LOCK_KEY})
            )
            try:
                yield got
            finally:
                if got:
                    await conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": GC_LOCK_KEY})
        return
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("a+b") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


async def _referenced(sessions: async_sessionmaker[AsyncSession], locations: list[str]) -> set[str]:
    async with sessions() as session:
        found = await session.scalars(select(Blob.location).where(Blob.location.in_(locations)))
        return {loc for loc in found if loc is not None}


async def _pages(store: BlobStore) -> AsyncIterator[list[StoredObject]]:
    page: list[StoredObject] = []
    async for item in store.list():
        page.append(item)
        if len(page) >= PAGE:
            yield page
            page = []
    if page:
        yield page


async def _remove(store: BlobStore, key: str) -> None:
    if isinstance(store, FilesystemBlobStore) and key.rpartition("/")[2].startswith(TEMP_PREFIX):
        await store.delete_temp(key)
    else:
        await store.delete(key)


async def _collect_store(
    sessions: async_sessionmaker[AsyncSession], store: BlobStore, cutoff: float, report: GcReport
) -> None:
    async for page in _pages(store):
        report.listed += len(page)
        old = [o for o in page if o.modified < cutoff]
        report.kept_young += len(page) - len(old)
        if not old:
            continue
        referenced = await _referenced(sessions, [f"{store.scheme}:{o.key}" for o in old])
        for item in old:
            if f"{store.scheme}:{item.key}" in referenced:
                report.referenced += 1
                continue
            await _remove(store, item.key)
            report.removed += 1
            log.info("blob object removed", extra={"store": store.scheme, "key": item.key})


async def collect(
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    stores: BlobStores,
    *,
    grace_seconds: float,
    lock_path: Path,
) -> GcReport:
    """One run over every configured store; `ran` False if another collector runs."""
    report = GcReport()
    async with collector_lock(engine, lock_path) as ours:
        if not ours:
            report.ran = False
            return report
        cutoff = time.time() - grace_seconds
        for store in stores.by_scheme.values():
            await _collect_store(sessions, store, cutoff, report)
    return report


async def collect_forever(
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    stores: BlobStores,
    *,
    grace_seconds: float,
    interval_seconds: float,
    lock_path: Path,
) -> None:
    """`barid serve`'s task: a run every `interval_seconds`, errors logged, until cancelled."""
    while True:
        await asyncio.sleep(interval_seconds)
        try:
            report = await collect(
                engine, sessions, stores, grace_seconds=grace_seconds, lock_path=lock_path
            )
        except (BlobStoreError, OSError) as exc:
            log.error(
                "blob collector failed", extra={"error": type(exc).__name__, "detail": str(exc)}
            )
            continue
        except Exception as exc:
            log.error("blob collector failed", extra={"error": type(exc).__name__})
            continue
        if report.removed:
            log.info("blob collector run", extra={"removed": report.removed})

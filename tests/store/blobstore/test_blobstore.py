"""Blob stores outside the database: round trips, tampering, migration and the collector."""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path

import pytest
from sqlalchemy import select

from gateway.config import ConfigError, load_settings
from gateway.store.blobs import BLOB_KEK_PURPOSE, BlobCipher, BlobIntegrityError
from gateway.store.blobstore import BlobStore, BlobStoreError, BlobStoreMissing, BlobStores
from gateway.store.blobstore.filesystem import FilesystemBlobStore
from gateway.store.blobstore.gc import collect, collector_lock
from gateway.store.blobstore.migrate import migrate_blobs
from gateway.store.blobstore.s3 import S3BlobStore
from gateway.store.blobstore.sigv4 import Credentials
from gateway.store.errors import StoreUnavailable
from gateway.store.messages import MessageStore
from gateway.store.models import Blob
from keys.gateway_keys import derive_key
from testkit.ports import free_port
from testkit.s3server import INLINE_MAX, S3Server
from testkit.store import AUDIT_KEY as AUDIT
from testkit.store import MASTER, counts, stamper, store_env, submission


async def _keys(store: BlobStore) -> set[str]:
    return {item.key async for item in store.list()}


async def test_store_round_trip(store: BlobStore) -> None:
    data = os.urandom(70_000)
    digest = hashlib.sha256(data).hexdigest()
    await store.put("ab/ab01", data, digest)
    assert await store.get("ab/ab01") == data
    assert await _keys(store) == {"ab/ab01"}
    await store.delete("ab/ab01")
    await store.delete("ab/ab01")  # already gone: no error
    with pytest.raises(BlobStoreMissing):
        await store.get("ab/ab01")
    assert await _keys(store) == set()


async def test_filesystem_refuses_a_write_that_does_not_match(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path / "b")
    with pytest.raises(BlobStoreError):
        await store.put("cd/cd01", b"letter", hashlib.sha256(b"other").hexdigest())
    assert await _keys(store) == set()  # neither the final name nor the temporary file
    with pytest.raises(BlobStoreError):
        await store.get("../escape")


async def _accept(env_store: MessageStore, size: int = 5000) -> tuple[int, bytes]:
    sub = submission(size=size)
    _, stamp = stamper(sub)
    accepted = await env_store.accept(sub, stamp, actor="t")
    return accepted.message_id, sub.raw


async def test_messages_round_trip_outside_and_tampering_is_refused(
    stores: BlobStores, tmp_path: Path
) -> None:
    async with store_env(f"sqlite+aiosqlite:///{tmp_path / 'b.db'}") as env:
        store = MessageStore(env.sessions, MASTER, AUDIT, stores)
        message_id, raw = await _accept(store)
        assert await store.load_original(message_id) == raw
        copy_id = (await store.copies_for(message_id))[0].id
        assert raw in await store.load_copy(copy_id)
        async with env.sessions() as s:
            rows = list(await s.scalars(select(Blob)))
        outside = [b for b in rows if b.location is not None]
        assert [b.purpose for b in outside] == ["original"]  # stamps' small parts stay inline
        assert outside[0].ciphertext == b"" and outside[0].location.startswith(stores.write.scheme)
        # The object replaced by other bytes: its SHA-256 no longer matches.
        assert stores.write is not None
        key = outside[0].location.partition(":")[2]
        sealed = await stores.write.get(key)
        forged = bytes([sealed[0] ^ 1]) + sealed[1:]
        await stores.write.put(key, forged, hashlib.sha256(forged).hexdigest())
        with pytest.raises(BlobIntegrityError):
            await store.load_original(message_id)


async def _read_all(store: MessageStore, accepted: list[tuple[int, bytes]]) -> None:
    for message_id, raw in accepted:
        assert await store.load_original(message_id) == raw


async def _locations(env_sessions: object) -> list[str | None]:
    async with env_sessions() as s:  # type: ignore[operator]
        found = await s.scalars(select(Blob.location).where(Blob.purpose == "original"))
        return [loc.partition(":")[0] if loc else None for loc in found]


async def test_migrate_between_backends_then_collect(
    db_url: str, tmp_path: Path, s3server: S3Server
) -> None:
    fs = FilesystemBlobStore(tmp_path / "blobs")
    s3 = s3server.blob_store(f"m-{tmp_path.name}/")
    try:
        await _migrate_and_collect(db_url, tmp_path, fs, s3)
    finally:
        await s3.close()


async def _migrate_and_collect(
    db_url: str, tmp_path: Path, fs: FilesystemBlobStore, s3: BlobStore
) -> None:
    everything = {"fs": fs, "s3": s3}
    async with store_env(db_url) as env:
        old = MessageStore(env.sessions, MASTER, AUDIT)  # database backend
        accepted = [await _accept(old) for _ in range(3)]
        lock = tmp_path / "gc.lock"
        # The objects a pass leaves behind (its source) and the ones rows reference.
        passes = [("filesystem", "fs", 0, 3), ("s3", "s3", 3, 3), ("database", None, 3, 0)]
        seen: list[int] = []  # the progress callbacks' moved counts
        for backend, scheme, orphans, referenced in passes:
            write = {"fs": fs, "s3": s3}.get(scheme or "")
            stores = BlobStores(write=write, inline_max=INLINE_MAX, by_scheme=everything)
            cipher = BlobCipher(derive_key(MASTER, BLOB_KEK_PURPOSE), stores)
            seen.clear()
            report = await migrate_blobs(
                env.sessions, cipher, backend, progress=lambda r: seen.append(r.moved)
            )
            assert (report.total, report.moved, report.failed) == (3, 3, 0)
            assert seen[-1] == 3
            assert await _locations(env.sessions) == [scheme] * 3
            again = await migrate_blobs(env.sessions, cipher, backend)  # resumable: nothing left
            assert again.total == 0
            await _read_all(MessageStore(env.sessions, MASTER, AUDIT, stores), accepted)
            # The copies left behind are orphans: kept within the grace period, then removed.
            young = await collect(env.engine, env.sessions, stores, grace_seconds=3600,
                                  lock_path=lock)  # fmt: skip
            assert young.removed == 0
            await asyncio.sleep(1.1)  # object times have one-second resolution on s3rver
            swept = await collect(env.engine, env.sessions, stores, grace_seconds=0.5,
                                  lock_path=lock)  # fmt: skip
            assert (swept.removed, swept.referenced) == (orphans, referenced)
        assert await _keys(fs) == set() and await _keys(s3) == set()
        # One collector at a time.
        async with collector_lock(env.engine, lock) as first:
            assert first
            skipped = await collect(env.engine, env.sessions, stores, grace_seconds=0,
                                    lock_path=lock)  # fmt: skip
            assert not skipped.ran


def test_message_size_is_capped_by_the_store(tmp_path: Path) -> None:
    toml = tmp_path / "barid.toml"
    toml.write_text("[smtp]\nmax_message_size = 300000000\n")
    with pytest.raises(ConfigError, match="256 MiB"):
        load_settings(toml, environ={})
    toml.write_text('[smtp]\nmax_message_size = 300000000\n[blobs]\nbackend = "filesystem"\n')
    assert load_settings(toml, environ={}).blobs.backend == "filesystem"


async def test_an_unreachable_store_refuses_the_submission_and_stores_nothing(
    tmp_path: Path,
) -> None:
    dead = S3BlobStore(f"http://127.0.0.1:{free_port()}", "b", Credentials("k", "s"))
    stores = BlobStores(write=dead, inline_max=INLINE_MAX, by_scheme={"s3": dead})
    async with store_env(f"sqlite+aiosqlite:///{tmp_path / 'b.db'}") as env:
        store = MessageStore(env.sessions, MASTER, AUDIT, stores)
        with pytest.raises(StoreUnavailable, match="temporarily unavailable"):
            await _accept(store)
        assert (await counts(env.sessions))["messages"] == 0
    await dead.close()

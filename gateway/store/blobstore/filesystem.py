"""A directory of ciphertext files: the blob store for a local, shared or replicated filesystem.

Owns: writing objects durably (temporary file, fsync, rename, fsync of the
directory), reading, deleting and listing them. Must not: hold plaintext, or
leave a half-written file under a final name.

Failure behaviour: an OSError becomes BlobStoreError (the path and errno, never
bytes); a file whose bytes do not match the SHA-256 given to `put` after the
write is removed and reported. Temporary files left by a crash carry the
`.tmp-` prefix and are removed by the garbage collector like any orphan.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

from gateway.store.blobstore.base import BlobStoreError, BlobStoreMissing, StoredObject

TEMP_PREFIX = ".tmp-"
MAX_OBJECT_BYTES = 1024**4  # a filesystem limit in practice; the message cap comes first


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FilesystemBlobStore:
    """Objects as files under `root` (created, mode 0700, on first use)."""

    scheme = "fs"
    max_object_bytes = MAX_OBJECT_BYTES

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"FilesystemBlobStore({str(self.root)!r})"

    def _path(self, key: str) -> Path:
        parts = key.split("/")
        if any(p in ("", ".", "..") or p.startswith(TEMP_PREFIX) for p in parts):
            raise BlobStoreError(f"bad object key {key!r}")
        return self.root.joinpath(*parts)

    def _put(self, key: str, data: bytes, sha256: str) -> None:
        final = self._path(key)
        folder = final.parent
        new_folder = not folder.exists()
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        temp = folder / f"{TEMP_PREFIX}{secrets.token_hex(8)}"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        if hashlib.sha256(temp.read_bytes()).hexdigest() != sha256:
            temp.unlink(missing_ok=True)
            raise BlobStoreError(f"object {key} did not read back as written")
        os.replace(temp, final)
        _fsync_dir(folder)
        if new_folder:
            _fsync_dir(folder.parent)

    async def put(self, key: str, data: bytes, sha256: str) -> None:
        try:
            await asyncio.to_thread(self._put, key, data, sha256)
        except OSError as exc:
            raise BlobStoreError(f"cannot write object {key}: {exc.strerror}") from None

    async def get(self, key: str) -> bytes:
        try:
            return await asyncio.to_thread(self._path(key).read_bytes)
        except FileNotFoundError:
            raise BlobStoreMissing(f"object {key} is missing") from None
        except OSError as exc:
            raise BlobStoreError(f"cannot read object {key}: {exc.strerror}") from None

    async def delete(self, key: str) -> None:
        try:
            await asyncio.to_thread(self._path(key).unlink, True)
        except OSError as exc:
            raise BlobStoreError(f"cannot delete object {key}: {exc.strerror}") from None

    def _scan(self) -> list[StoredObject]:
        out: list[StoredObject] = []
        if not self.root.is_dir():
            return out
        for folder in sorted(p for p in self.root.iterdir() if p.is_dir()):
            for entry in os.scandir(folder):
                if entry.is_file(follow_symlinks=False):
                    mtime = entry.stat(follow_symlinks=False).st_mtime
                    out.append(StoredObject(f"{folder.name}/{entry.name}", mtime))
        return out

    async def list(self) -> AsyncIterator[StoredObject]:
        try:
            found = await asyncio.to_thread(self._scan)
        except OSError as exc:
            raise BlobStoreError(f"cannot list objects: {exc.strerror}") from None
        for item in found:
            yield item

    async def delete_temp(self, key: str) -> None:
        """Remove a crash's temporary file (the collector calls this for `.tmp-` names)."""
        folder, _, name = key.rpartition("/")
        if not name.startswith(TEMP_PREFIX) or "/" in folder or folder in ("", ".", ".."):
            raise BlobStoreError(f"bad temporary key {key!r}")
        await asyncio.to_thread((self.root / folder / name).unlink, True)

    async def close(self) -> None:
        return None

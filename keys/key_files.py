"""Files that hold key material: atomic creation and replacement, checked reading.

Owns: writing a key file without ever exposing or overwriting it, replacing one
atomically, reading a secret file only if group and others cannot reach it, and
the permission check of a key directory. Must not: know what a key file holds.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from pathlib import Path

PRIVATE_FILE_MODE = 0o600
PRIVATE_DIR_MODE = 0o700
PUBLIC_FILE_MODE = 0o644


class KeyFileError(Exception):
    """A key file is missing, unreadable, malformed or too widely readable.

    The message names the file and says how to fix it; it never contains key bytes.
    """


def fsync_dir(directory: Path) -> None:
    """Make the names created in `directory` survive a crash."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_temp(path: Path, data: bytes, mode: int) -> Path:
    """A fsynced temporary file next to `path` holding `data`, created with `mode`."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW
    fd = os.open(tmp, flags, mode)
    try:
        os.fchmod(fd, mode)  # the umask may have removed bits we asked for
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    os.close(fd)
    return tmp


def write_new_file(path: Path, data: bytes, mode: int = PRIVATE_FILE_MODE) -> None:
    """Atomically create `path` holding `data` with `mode`; never replace a file.

    The bytes go to a temporary file in the same directory (created with O_EXCL and
    `mode` from the start, so they are never readable by others), are fsynced, then
    hard-linked into place, which fails with FileExistsError if `path` exists. The
    directory is fsynced so the new name survives a crash.
    """
    path = Path(path)
    tmp = _write_temp(path, data, mode)
    try:
        try:
            os.link(tmp, path)
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP):
                raise
            # A filesystem without hard links: check, then rename (small race window).
            if os.path.lexists(path):
                raise FileExistsError(errno.EEXIST, "file exists", str(path)) from None
            os.rename(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    fsync_dir(path.parent)


def replace_file(path: Path, data: bytes, mode: int = PRIVATE_FILE_MODE) -> None:
    """Atomically replace (or create) `path` with `data` and `mode`.

    Readers see either the old bytes or the new ones, never a mix: the new bytes
    are written and fsynced to a temporary file in the same directory, renamed over
    `path`, and the directory is fsynced so the rename survives a crash.
    """
    path = Path(path)
    tmp = _write_temp(path, data, mode)
    try:
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    fsync_dir(path.parent)


def read_private_file(path: Path, what: str) -> bytes:
    """Read a secret file, refusing one that group or others may read or write."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise KeyFileError(f"{path}: {what} is missing (run `barid init` to create it)") from None
    except PermissionError:
        raise KeyFileError(f"{path}: {what} is not readable by this user") from None
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot open {what}: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise KeyFileError(f"{path}: {what} is not a regular file")
        if info.st_mode & 0o077:
            raise KeyFileError(
                f"{path}: {what} is accessible by group or others"
                f" (mode {stat.S_IMODE(info.st_mode):04o}); fix with: chmod 600 {path}"
            )
        chunks: list[bytes] = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
        return b"".join(chunks)
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot read {what}: {exc.strerror}") from None
    finally:
        os.close(fd)


def check_key_directory(directory: Path) -> None:
    """Raise KeyFileError unless `directory` is a directory only its owner may write."""
    try:
        info = directory.stat()
    except FileNotFoundError:
        raise KeyFileError(
            f"{directory}: key directory is missing (run `barid init` to create it)"
        ) from None
    except OSError as exc:
        raise KeyFileError(f"{directory}: cannot open key directory: {exc.strerror}") from None
    if not stat.S_ISDIR(info.st_mode):
        raise KeyFileError(f"{directory}: expected a key directory, found a file")
    if info.st_mode & 0o022:
        raise KeyFileError(
            f"{directory}: key directory is writable by group or others"
            f" (mode {stat.S_IMODE(info.st_mode):04o}); fix with: chmod 700 {directory}"
        )

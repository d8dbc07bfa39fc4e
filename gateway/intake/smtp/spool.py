"""Where the bytes of a message being received wait: memory first, then an encrypted file.

Owns: `MessageSink` (a message under `threshold` bytes stays in memory; beyond
it every further chunk is sealed with AES-256-GCM under a key that exists only
in this process's memory and appended to a file in the spool directory), reading
it back once into a single `bytes`, removing the file, and `clear_spool` at
start-up. Must not: fsync (nothing is acknowledged from here; the store commits)
or keep a file after `close`.
"""

from __future__ import annotations

import contextlib
import io
import os
import secrets
import struct
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

SPOOL_DIR_NAME = "spool"
_RECORD = struct.Struct(">I")  # ciphertext length of the record that follows


def clear_spool(directory: Path) -> int:
    """Remove temporary files a previous run left behind; the number removed."""
    removed = 0
    if not directory.is_dir():
        return 0
    for entry in directory.iterdir():
        if entry.name.endswith(".part") and entry.is_file():
            with contextlib.suppress(OSError):
                entry.unlink()
                removed += 1
    return removed


class MessageSink:
    """Collects one message's decoded bytes; spools past `threshold` (0: never)."""

    def __init__(self, directory: Path | None, threshold: int) -> None:
        self._directory = directory
        self._threshold = threshold
        self._memory = bytearray()
        self._file: io.BufferedWriter | None = None
        self._path: Path | None = None
        self._aead: AESGCM | None = None
        self._records = 0
        self.size = 0

    @property
    def spooled(self) -> bool:
        return self._file is not None

    def write(self, data: bytes) -> None:
        if not data:
            return
        self.size += len(data)
        if self._file is None:
            self._memory += data
            if self._directory is None or not self._threshold:
                return
            if len(self._memory) <= self._threshold:
                return
            self._open()
            data, self._memory = bytes(self._memory), bytearray()
        self._seal(data)

    def _open(self) -> None:
        assert self._directory is not None
        self._directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._path = self._directory / f"{secrets.token_hex(16)}.part"
        fd = os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self._file = os.fdopen(fd, "wb")
        self._aead = AESGCM(AESGCM.generate_key(bit_length=256))

    def _nonce(self, index: int) -> bytes:
        return index.to_bytes(12, "big")  # one key per file: a counter never repeats

    def _seal(self, data: bytes) -> None:
        assert self._file is not None and self._aead is not None
        index = self._records
        sealed = self._aead.encrypt(self._nonce(index), data, _RECORD.pack(index))
        self._file.write(_RECORD.pack(len(sealed)) + sealed)
        self._records += 1

    def read(self) -> bytes:
        """The whole message once, as one `bytes` (read back from the file if spooled)."""
        if self._file is None:
            out = bytes(self._memory)
            self._memory = bytearray()
            return out
        self._file.flush()
        assert self._path is not None and self._aead is not None
        # Decrypted straight into a buffer of the final size, which getvalue() then
        # hands over without another copy.
        target = io.BytesIO(bytes(self.size))
        with self._path.open("rb") as fh:
            for index in range(self._records):
                (length,) = _RECORD.unpack(fh.read(_RECORD.size))
                target.write(
                    self._aead.decrypt(self._nonce(index), fh.read(length), _RECORD.pack(index))
                )
        return target.getvalue()

    def close(self) -> None:
        """Forget the bytes and remove the file (idempotent)."""
        self._memory = bytearray()
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None
        if self._path is not None:
            with contextlib.suppress(OSError):
                self._path.unlink()
            self._path = None
        self._aead = None

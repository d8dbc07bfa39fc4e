"""The backup archive format: a tar of encrypted members, a header and a signed manifest.

Owns: the passphrase KDF (scrypt), the chunked AES-256-GCM member encryption, the
manifest and its HMAC, writing an archive and verifying one completely before
anything is extracted. Must not: know what the members mean (admin.backup does).

Layout (tar, in this order): `header.json` (format, KDF parameters and salt, a
passphrase check value); one member per item, each `<7-byte nonce prefix>` then
1 MiB chunks sealed with AES-256-GCM (nonce = prefix + chunk counter + last-chunk
flag, associated data = the member name: chunks cannot be reordered, dropped or
moved to another member); `manifest.json` last: every member's size and SHA-256,
the header's SHA-256 and the caller's metadata, under an HMAC-SHA256 keyed from
the passphrase. Verifying reads the whole archive and checks all of it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import os
import secrets
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

FORMAT = "barid-backup/1"
HEADER = "header.json"
MANIFEST = "manifest.json"
CHUNK = 1024 * 1024
PREFIX_BYTES = 7
TAG_BYTES = 16
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**17, 8, 1
MAX_SCRYPT_MEMORY = 2**30  # 128 * n * r * p bytes; a header asking for more is refused
_CHECK_LABEL = b"barid-backup/1 passphrase check"

Progress = Callable[[int, int], None]  # (bytes done, bytes total)


class ArchiveError(Exception):
    """The archive is unusable; the message is one line for the operator."""


@dataclass(frozen=True)
class Keys:
    encrypt: bytes
    mac: bytes

    def check_value(self) -> str:
        return hmac.new(self.mac, _CHECK_LABEL, hashlib.sha256).hexdigest()


def derive_keys(passphrase: bytes, salt: bytes, n: int, r: int, p: int) -> Keys:
    """scrypt(passphrase) -> HKDF -> an encryption key and a MAC key."""
    root = Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(passphrase)

    def sub(label: bytes) -> bytes:
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=label).derive(root)

    return Keys(encrypt=sub(b"barid-backup/1 encrypt"), mac=sub(b"barid-backup/1 mac"))


def sealed_size(plain_size: int) -> int:
    chunks = max(1, -(-plain_size // CHUNK))
    return PREFIX_BYTES + plain_size + TAG_BYTES * chunks


def _nonce(prefix: bytes, index: int, last: bool) -> bytes:
    return prefix + index.to_bytes(4, "big") + (b"\x01" if last else b"\x00")


class _SealingReader(io.RawIOBase):
    """Reads a plaintext file and yields the sealed member bytes (for tarfile)."""

    def __init__(self, source: IO[bytes], size: int, key: bytes, name: str,
                 progress: Progress | None) -> None:  # fmt: skip
        self._source, self._size, self._aead = source, size, AESGCM(key)
        self._aad, self._progress = name.encode(), progress
        self._prefix = secrets.token_bytes(PREFIX_BYTES)
        self._pending = self._prefix
        self._index, self._done, self._finished = 0, 0, False
        self.digest = hashlib.sha256()  # of the sealed bytes
        self.plain = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def _next_chunk(self) -> None:
        chunk = self._source.read(min(CHUNK, self._size - self._done))
        if len(chunk) < min(CHUNK, self._size - self._done):
            raise ArchiveError("a file changed size while it was being backed up")
        self._done += len(chunk)
        self.plain.update(chunk)
        last = self._done >= self._size
        nonce = _nonce(self._prefix, self._index, last)
        self._pending = self._aead.encrypt(nonce, chunk, self._aad)
        self._index += 1
        self._finished = last
        if self._progress is not None:
            self._progress(self._done, self._size)

    def read(self, size: int = -1) -> bytes:
        out = bytearray()
        while size < 0 or len(out) < size:
            if not self._pending:
                if self._finished:
                    break
                self._next_chunk()
            want = len(self._pending) if size < 0 else size - len(out)
            out += self._pending[:want]
            self._pending = self._pending[want:]
        data = bytes(out)
        self.digest.update(data)
        return data


def open_member(source: IO[bytes], key: bytes, name: str) -> Iterator[bytes]:
    """Plaintext chunks of a sealed member; ArchiveError on any tampering."""
    prefix = source.read(PREFIX_BYTES)
    if len(prefix) != PREFIX_BYTES:
        raise ArchiveError(f"member {name} is truncated")
    aead, aad = AESGCM(key), name.encode()
    index = 0
    block = source.read(CHUNK + TAG_BYTES)
    while True:
        following = source.read(CHUNK + TAG_BYTES) if len(block) == CHUNK + TAG_BYTES else b""
        last = not following
        try:
            yield aead.decrypt(_nonce(prefix, index, last), block, aad)
        except InvalidTag:
            raise ArchiveError(f"member {name} does not decrypt (damaged or altered)") from None
        if last:
            return
        block, index = following, index + 1


def _canonical(data: dict[str, Any]) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


class ArchiveWriter:
    """Writes DEST.partial, then renames it to DEST once complete and fsynced."""

    def __init__(self, dest: Path, passphrase: bytes) -> None:
        self.dest = dest
        self._partial = dest.with_name(dest.name + ".partial")
        salt = secrets.token_bytes(16)
        self.keys = derive_keys(passphrase, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
        fd = os.open(self._partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self._file = os.fdopen(fd, "wb")
        self._tar = tarfile.open(fileobj=self._file, mode="w", format=tarfile.PAX_FORMAT)  # noqa: SIM115
        self.members: dict[str, dict[str, Any]] = {}
        header = {
            "format": FORMAT,
            "kdf": {
                "name": "scrypt",
                "salt": base64.b64encode(salt).decode(),
                "n": SCRYPT_N,
                "r": SCRYPT_R,
                "p": SCRYPT_P,
            },
            "check": self.keys.check_value(),
        }
        raw = _canonical(header)
        self._add_raw(HEADER, raw)
        self._header_sha = hashlib.sha256(raw).hexdigest()

    def _add_raw(self, name: str, data: bytes) -> None:
        info = tarfile.TarInfo(name)
        info.size, info.mode = len(data), 0o600
        self._tar.addfile(info, io.BytesIO(data))

    def add_file(self, name: str, path: Path, progress: Progress | None = None) -> tuple[int, str]:
        """Seal the file at `path` as member `name`: (plaintext size, its SHA-256)."""
        with path.open("rb") as source:
            size = os.fstat(source.fileno()).st_size
            reader = _SealingReader(source, size, self.keys.encrypt, name, progress)
            info = tarfile.TarInfo(name)
            info.size, info.mode = sealed_size(size), 0o600
            self._tar.addfile(info, reader)
        self.members[name] = {"size": info.size, "sha256": reader.digest.hexdigest()}
        return size, reader.plain.hexdigest()

    def finish(self, metadata: dict[str, Any]) -> None:
        manifest = {"format": FORMAT, "header_sha256": self._header_sha,
                    "members": self.members, "metadata": metadata}  # fmt: skip
        mac = hmac.new(self.keys.mac, _canonical(manifest), hashlib.sha256).hexdigest()
        self._add_raw(MANIFEST, _canonical({"manifest": manifest, "hmac": mac}))
        self._tar.close()
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        if self.dest.exists():
            raise ArchiveError(f"{self.dest} appeared while the backup was written")
        os.rename(self._partial, self.dest)
        dir_fd = os.open(self.dest.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def abandon(self) -> None:
        try:
            self._tar.close()
            self._file.close()
        except (OSError, tarfile.TarError):
            pass
        self._partial.unlink(missing_ok=True)


def _keys_from_header(raw: bytes, passphrase: bytes) -> tuple[Keys, str]:
    try:
        header = json.loads(raw)
        kdf = header["kdf"]
        salt = base64.b64decode(kdf["salt"], validate=True)
        n, r, p = int(kdf["n"]), int(kdf["r"]), int(kdf["p"])
        fmt, check = header["format"], str(header["check"])
    except (ValueError, KeyError, TypeError):
        raise ArchiveError("not a Barid backup (unreadable header)") from None
    if fmt != FORMAT:
        raise ArchiveError(f"unsupported backup format {fmt!r} (this Barid reads {FORMAT})")
    sane = n >= 2 and n & (n - 1) == 0 and r >= 1 and p >= 1
    if kdf.get("name") != "scrypt" or not sane or 128 * n * r * p > MAX_SCRYPT_MEMORY:
        raise ArchiveError("not a Barid backup (unexpected key derivation parameters)")
    keys = derive_keys(passphrase, salt, n, r, p)
    if not hmac.compare_digest(keys.check_value(), check):
        raise ArchiveError("wrong passphrase for this backup")
    return keys, hashlib.sha256(raw).hexdigest()


def _manifest(raw: bytes, keys: Keys) -> dict[str, Any]:
    try:
        outer = json.loads(raw)
        manifest, mac = outer["manifest"], str(outer["hmac"])
        expected = hmac.new(keys.mac, _canonical(manifest), hashlib.sha256).hexdigest()
    except (ValueError, KeyError, TypeError):
        raise ArchiveError("the manifest is damaged (not readable)") from None
    if not hmac.compare_digest(mac, expected):
        raise ArchiveError("the manifest was altered (its signature does not match)")
    if not isinstance(manifest, dict):
        raise ArchiveError("the manifest is damaged (not readable)")
    return manifest


def verify(
    src: Path, passphrase: bytes, progress: Progress | None = None
) -> tuple[Keys, dict[str, Any]]:
    """Read all of `src`; return (keys, metadata) only when every byte checks out."""
    seen: dict[str, dict[str, Any]] = {}
    keys: Keys | None = None
    header_sha = manifest = None
    total = src.stat().st_size
    try:
        with tarfile.open(src, mode="r:") as tar:
            for info in tar:
                if not info.isfile() or info.name in seen:
                    raise ArchiveError(f"unexpected entry {info.name!r} in the archive")
                stream = tar.extractfile(info)
                assert stream is not None
                if info.name in (HEADER, MANIFEST):
                    raw = stream.read(info.size)
                    if len(raw) != info.size:
                        raise ArchiveError("the archive is truncated")
                    if info.name == HEADER:
                        keys, header_sha = _keys_from_header(raw, passphrase)
                    elif keys is None:
                        raise ArchiveError("the archive has no header")
                    else:
                        manifest = _manifest(raw, keys)
                    seen[info.name] = {}
                    continue
                digest, size = hashlib.sha256(), 0
                while block := stream.read(CHUNK):
                    digest.update(block)
                    size += len(block)
                    if progress is not None:
                        progress(info.offset_data + size, total)
                seen[info.name] = {"size": size, "sha256": digest.hexdigest()}
            end = tar.offset
        with src.open("rb") as fh:  # tar's end-of-archive marker: two zero blocks
            fh.seek(end)
            if fh.read(2 * tarfile.BLOCKSIZE) != bytes(2 * tarfile.BLOCKSIZE):
                raise ArchiveError("the archive is truncated (its end is missing)")
    except (tarfile.TarError, EOFError) as exc:
        raise ArchiveError(f"the archive is truncated or not a Barid backup ({exc})") from None
    if keys is None or manifest is None:
        raise ArchiveError("the archive is incomplete (no header or no manifest)")
    _check_members(manifest, seen, header_sha)
    metadata = manifest.get("metadata")
    if not isinstance(metadata, dict):
        raise ArchiveError("the manifest is damaged (no metadata)")
    return keys, metadata


def _check_members(manifest: dict[str, Any], seen: dict[str, dict[str, Any]],
                   header_sha: str | None) -> None:  # fmt: skip
    if manifest.get("format") != FORMAT or manifest.get("header_sha256") != header_sha:
        raise ArchiveError("the manifest does not belong to this archive's header")
    listed = manifest.get("members")
    if not isinstance(listed, dict):
        raise ArchiveError("the manifest is damaged (no member list)")
    found = {name: facts for name, facts in seen.items() if name not in (HEADER, MANIFEST)}
    missing = sorted(set(listed) - set(found))
    if missing:
        raise ArchiveError(f"the archive is incomplete: member {missing[0]} is missing")
    extra = sorted(set(found) - set(listed))
    if extra:
        raise ArchiveError(f"the archive has a member the manifest does not list: {extra[0]}")
    for name, facts in listed.items():
        if found[name] != facts:
            raise ArchiveError(f"member {name} is damaged (its SHA-256 differs from the manifest)")


def extract(src: Path, keys: Keys, name: str, out: IO[bytes]) -> str:
    """Decrypt member `name` of a verified archive into `out`; its plaintext SHA-256."""
    digest = hashlib.sha256()
    try:
        with tarfile.open(src, mode="r:") as tar:
            stream = tar.extractfile(name)
            if stream is None:
                raise ArchiveError(f"member {name} is missing")
            for chunk in open_member(stream, keys.encrypt, name):
                digest.update(chunk)
                out.write(chunk)
    except (tarfile.TarError, KeyError, EOFError):
        raise ArchiveError(f"member {name} cannot be read") from None
    return digest.hexdigest()

"""The gateway's own key material, kept as files in one directory (DATA_DIR/keys).

Owns: creating (never overwriting), checking and loading the token signing key,
the DKIM keys and the at-rest master key; rotating the token signing key (the old
public key is kept in retired-signing/); HKDF subkeys of the master key. Must not:
log or print secret material, or write files except through `keys.key_files`.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import os
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from keys.key_files import (
    PRIVATE_DIR_MODE,
    PRIVATE_FILE_MODE,
    PUBLIC_FILE_MODE,
    check_key_directory,
    fsync_dir,
    read_private_file,
    replace_file,
    write_new_file,
)

# KeyFileError is what every loader here raises; it stays importable from this
# module, so callers that load keys and catch the error need one import.
from keys.key_files import KeyFileError as KeyFileError

KEYS_SUBDIR = "keys"
SIGNING_KEY_FILE = "signing-ed25519.pem"
DKIM_RSA_KEY_FILE = "dkim-rsa.pem"
DKIM_ED25519_KEY_FILE = "dkim-ed25519.pem"
MASTER_KEY_FILE = "master.key"
# Public keys of retired token signing keys, kept so old tokens still verify.
RETIRED_SIGNING_DIR = "retired-signing"

MASTER_KEY_BYTES = 32
DKIM_RSA_BITS = 2048

_PURPOSE_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{0,63}$")
_HKDF_INFO_PREFIX = b"barid/v1/"


# ---------------------------------------------------------------- key ids and HKDF


def key_id(public_key: ed25519.Ed25519PublicKey | rsa.RSAPublicKey) -> str:
    """First 16 hex characters of SHA-256 over the public key.

    Ed25519: the 32 raw bytes; RSA: the DER SubjectPublicKeyInfo.
    """
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    else:
        raw = public_key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    return hashlib.sha256(raw).hexdigest()[:16]


def derive_key(master: bytes, purpose: str, length: int = 32) -> bytes:
    """A subkey of the master key for one purpose (HKDF-SHA256, RFC 5869).

    `purpose` is a short lower-case name such as "audit-chain"; the HKDF info is
    b"barid/v1/" + purpose and the salt is empty (the master key is uniformly random).
    The same (master, purpose, length) always gives the same bytes.
    """
    if len(master) < MASTER_KEY_BYTES:
        raise ValueError(f"master key must be at least {MASTER_KEY_BYTES} bytes")
    if not _PURPOSE_RE.fullmatch(purpose):
        raise ValueError(
            f"invalid key purpose {purpose!r}: use lower-case letters, digits, '.' and '-'"
        )
    hkdf = HKDF(
        algorithm=hashes.SHA256(),
        length=length,
        salt=None,
        info=_HKDF_INFO_PREFIX + purpose.encode("ascii"),
    )
    return hkdf.derive(master)


# ---------------------------------------------------------------- generation


def _pem_private(key: ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _new_ed25519_pem() -> bytes:
    return _pem_private(ed25519.Ed25519PrivateKey.generate())


def _new_rsa_pem() -> bytes:
    return _pem_private(rsa.generate_private_key(public_exponent=65537, key_size=DKIM_RSA_BITS))


def _new_master_key() -> bytes:
    return base64.b64encode(secrets.token_bytes(MASTER_KEY_BYTES)) + b"\n"


_GENERATORS: tuple[tuple[str, Callable[[], bytes]], ...] = (
    (SIGNING_KEY_FILE, _new_ed25519_pem),
    (DKIM_RSA_KEY_FILE, _new_rsa_pem),
    (DKIM_ED25519_KEY_FILE, _new_ed25519_pem),
    (MASTER_KEY_FILE, _new_master_key),
)


@dataclass(frozen=True, slots=True)
class KeysReport:
    """What `ensure_gateway_keys` did: file names created and already present."""

    directory: Path
    created: tuple[str, ...]
    present: tuple[str, ...]

    @property
    def created_any(self) -> bool:
        return bool(self.created)


def default_keys_dir(data_dir: Path | str) -> Path:
    return Path(data_dir) / KEYS_SUBDIR


def ensure_gateway_keys(directory: Path | str) -> KeysReport:
    """Create whichever gateway key files are missing in `directory`.

    Idempotent: existing files are left untouched (never overwritten, not even
    checked: `load_gateway_keys` does that). A new directory is made with mode 0700;
    new files with mode 0600.
    """
    directory = Path(directory)
    if not directory.exists():
        directory.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
        directory.chmod(PRIVATE_DIR_MODE)
    elif not directory.is_dir():
        raise KeyFileError(f"{directory}: expected a key directory, found a file")
    created: list[str] = []
    present: list[str] = []
    for name, generate in _GENERATORS:
        path = directory / name
        if os.path.lexists(path):
            present.append(name)
            continue
        try:
            write_new_file(path, generate(), PRIVATE_FILE_MODE)
        except FileExistsError:
            present.append(name)  # created concurrently by another process
        except OSError as exc:
            raise KeyFileError(f"{path}: cannot create key file: {exc.strerror}") from None
        else:
            created.append(name)
    return KeysReport(directory=directory, created=tuple(created), present=tuple(present))


# ---------------------------------------------------------------- loading


@dataclass(frozen=True, slots=True)
class GatewayKeys:
    """The gateway's loaded keys. `repr` never shows the master key."""

    directory: Path
    signing_key: ed25519.Ed25519PrivateKey
    signing_key_id: str
    dkim_rsa_key: rsa.RSAPrivateKey
    dkim_ed25519_key: ed25519.Ed25519PrivateKey
    master_key: bytes = field(repr=False)
    retired_signing_keys: Mapping[str, ed25519.Ed25519PublicKey] = field(
        default_factory=lambda: MappingProxyType({})
    )

    @property
    def signing_public_key(self) -> ed25519.Ed25519PublicKey:
        return self.signing_key.public_key()

    @property
    def verification_keys(self) -> Mapping[str, ed25519.Ed25519PublicKey]:
        """Every public key a token may name, by key id: current and retired."""
        keys = dict(self.retired_signing_keys)
        keys[self.signing_key_id] = self.signing_public_key
        return MappingProxyType(keys)

    def derive(self, purpose: str, length: int = 32) -> bytes:
        """`derive_key(self.master_key, purpose, length)`."""
        return derive_key(self.master_key, purpose, length)


def _load_private_pem(path: Path, what: str) -> ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey:
    data = read_private_file(path, what)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise KeyFileError(
            f"{path}: {what} is passphrase-protected; Barid needs it unencrypted"
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise KeyFileError(f"{path}: {what} is not a valid PEM private key") from None
    if not isinstance(key, ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey):
        raise KeyFileError(f"{path}: {what} has an unexpected key type")
    return key


def _load_ed25519(path: Path, what: str) -> ed25519.Ed25519PrivateKey:
    key = _load_private_pem(path, what)
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise KeyFileError(f"{path}: {what} must be an Ed25519 key")
    return key


def _load_rsa(path: Path, what: str) -> rsa.RSAPrivateKey:
    key = _load_private_pem(path, what)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise KeyFileError(f"{path}: {what} must be an RSA key")
    if key.key_size < DKIM_RSA_BITS:
        raise KeyFileError(f"{path}: {what} is {key.key_size} bits; use at least {DKIM_RSA_BITS}")
    return key


def _load_master(path: Path) -> bytes:
    data = read_private_file(path, "master key")
    try:
        master = base64.b64decode(data.strip(), validate=True)
    except ValueError:
        raise KeyFileError(f"{path}: master key is not valid base64") from None
    if len(master) != MASTER_KEY_BYTES:
        raise KeyFileError(f"{path}: master key must be {MASTER_KEY_BYTES} bytes")
    return master


def _load_retired(directory: Path) -> Mapping[str, ed25519.Ed25519PublicKey]:
    retired_dir = directory / RETIRED_SIGNING_DIR
    if not retired_dir.is_dir():
        return MappingProxyType({})
    found: dict[str, ed25519.Ed25519PublicKey] = {}
    for path in sorted(retired_dir.glob("*.pem")):
        try:
            public = serialization.load_pem_public_key(path.read_bytes())
        except OSError as exc:
            raise KeyFileError(f"{path}: cannot read retired signing key: {exc.strerror}") from None
        except (ValueError, UnsupportedAlgorithm):
            raise KeyFileError(f"{path}: not a PEM public key") from None
        if not isinstance(public, ed25519.Ed25519PublicKey):
            raise KeyFileError(f"{path}: retired signing key must be an Ed25519 public key")
        found[key_id(public)] = public
    return MappingProxyType(found)


def load_gateway_keys(directory: Path | str) -> GatewayKeys:
    """Load and check every gateway key in `directory`; raise KeyFileError on any problem."""
    directory = Path(directory)
    check_key_directory(directory)
    signing = _load_ed25519(directory / SIGNING_KEY_FILE, "token signing key")
    return GatewayKeys(
        directory=directory,
        signing_key=signing,
        signing_key_id=key_id(signing.public_key()),
        dkim_rsa_key=_load_rsa(directory / DKIM_RSA_KEY_FILE, "DKIM RSA key"),
        dkim_ed25519_key=_load_ed25519(directory / DKIM_ED25519_KEY_FILE, "DKIM Ed25519 key"),
        master_key=_load_master(directory / MASTER_KEY_FILE),
        retired_signing_keys=_load_retired(directory),
    )


# ---------------------------------------------------------------- rotation


def _pem_public(key: ed25519.Ed25519PublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _keep_retired(retired_dir: Path, public: ed25519.Ed25519PublicKey, kid: str) -> None:
    """Write `retired-signing/<kid>.pem` (0644, fsynced); accept an identical one."""
    if not retired_dir.exists():
        with contextlib.suppress(FileExistsError):
            retired_dir.mkdir(mode=PRIVATE_DIR_MODE)
        fsync_dir(retired_dir.parent)
    path = retired_dir / f"{kid}.pem"
    pem = _pem_public(public)
    try:
        write_new_file(path, pem, PUBLIC_FILE_MODE)
    except FileExistsError:
        # Left by an earlier rotation that stopped before replacing the key.
        try:
            existing = serialization.load_pem_public_key(path.read_bytes())
        except (OSError, ValueError, UnsupportedAlgorithm):
            existing = None
        if not isinstance(existing, ed25519.Ed25519PublicKey) or key_id(existing) != kid:
            raise KeyFileError(
                f"{path}: exists but does not hold the public key {kid}; move it away"
            ) from None


def rotate_signing_key(
    directory: Path | str, new: ed25519.Ed25519PrivateKey | None = None
) -> tuple[str, str]:
    """Retire the token signing key and make a new one; returns (old id, new id).

    First the current key's PUBLIC key is written to `retired-signing/<old id>.pem`
    (0644, fsynced), then the private key file is replaced atomically by a new
    Ed25519 key (0600). A crash between the two steps leaves the old key current
    and verifiable; running the rotation again then completes it. Concurrent
    rotations of one directory are serialised by a lock on the directory.
    `new` is the new key (default: a fresh one; `barid keys rotate` passes the
    key it recorded in the database's key set).
    """
    directory = Path(directory)
    check_key_directory(directory)
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        signing_path = directory / SIGNING_KEY_FILE
        old = _load_ed25519(signing_path, "token signing key")
        old_id = key_id(old.public_key())
        try:
            _keep_retired(directory / RETIRED_SIGNING_DIR, old.public_key(), old_id)
            new = new or ed25519.Ed25519PrivateKey.generate()
            replace_file(signing_path, _pem_private(new), PRIVATE_FILE_MODE)
        except OSError as exc:
            raise KeyFileError(
                f"{directory}: cannot rotate the token signing key: {exc.strerror}"
            ) from None
        return old_id, key_id(new.public_key())
    finally:
        os.close(fd)  # also releases the lock

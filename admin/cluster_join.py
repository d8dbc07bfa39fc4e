"""`barid cluster export-keys` and `barid init --join`: the steps, without the options.

Owns: reading the passphrase (stdin or a file, never the command line), writing
the bundle file (0600, never over an existing file), and joining: open the
bundle, compare its master key with the database's check value, and only then
lay out the new data directory and finish it with the ordinary `barid init`
steps (which then create nothing but find everything). Must not: make a master
key, or write to the database before the check passed.
"""

from __future__ import annotations

import base64
import binascii
import os
import sys
from pathlib import Path
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from admin.cluster_bundle import lay_out, master_key_file
from admin.errors import CliError
from admin.init import InitReport, initialise
from gateway.store import migrate
from gateway.store.cluster_state import stored_master_check
from gateway.store.db import create_engine, session_factory
from keys.bundle import BundleError, open_bundle
from keys.cluster_keys import key_check_value
from keys.key_files import PRIVATE_FILE_MODE

BUNDLE_MISMATCH = (
    "the bundle's master key does not match the database's: export it from a node of this cluster"
)


def read_passphrase(passphrase_file: str | None) -> str:
    """The first line of --passphrase-file F, else of stdin (without its line end)."""
    try:
        if passphrase_file is not None:
            text = Path(passphrase_file).read_text(encoding="utf-8")
        else:
            text = sys.stdin.readline()
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"cannot read the passphrase ({type(exc).__name__})") from None
    line = text.splitlines()[0] if text else ""
    if not line:
        raise CliError("no passphrase given (first line of stdin, or --passphrase-file)")
    return line


def write_bundle(dest: Path, data: bytes) -> None:
    """Create `dest` with mode 0600; refuse an existing file."""
    try:
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, PRIVATE_FILE_MODE)
    except FileExistsError:
        raise CliError(f"{dest} exists; choose another name") from None
    except OSError as exc:
        raise CliError(f"{dest}: cannot create ({exc.strerror})") from None
    try:
        os.fchmod(fd, PRIVATE_FILE_MODE)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except OSError as exc:
        os.close(fd)
        dest.unlink(missing_ok=True)
        raise CliError(f"{dest}: cannot write ({exc.strerror})") from None
    os.close(fd)


def _open(source: Path, passphrase: str) -> tuple[dict[str, Any], str]:
    """The bundle's payload and its master key's check value."""
    try:
        data = source.read_bytes()
    except OSError as exc:
        raise CliError(f"{source}: cannot read the key bundle ({exc.strerror})") from None
    try:
        payload = open_bundle(data, passphrase)
        master = base64.b64decode(master_key_file(payload).strip(), validate=True)
    except BundleError as exc:
        raise CliError(f"{source}: {exc}") from None
    except (binascii.Error, ValueError):
        raise CliError(f"{source}: key bundle content is not valid") from None
    if len(master) != 32:
        raise CliError(f"{source}: key bundle content is not valid")
    return payload, key_check_value(master)


async def _database_agrees(database_url: str, check: str) -> None:
    engine = create_engine(database_url)
    try:
        current = await migrate.current_revision(engine)
        if current != migrate.head_revision():
            raise CliError(
                f"database schema is at {current or 'nothing'}, expected"
                f" {migrate.head_revision()}: run `barid init` on an existing node first"
            )
        stored = await stored_master_check(session_factory(engine))
    except (SQLAlchemyError, OSError) as exc:
        raise CliError(f"database unavailable ({type(exc).__name__})") from None
    finally:
        await engine.dispose()
    if stored is not None and stored != check:
        raise CliError(BUNDLE_MISMATCH)


def _empty_or_absent(data_dir: Path) -> Path:
    data_dir = data_dir.expanduser().resolve()
    if data_dir.exists() and (not data_dir.is_dir() or any(data_dir.iterdir())):
        raise CliError(f"{data_dir} exists and is not empty: join into a new data directory")
    return data_dir


async def join(
    source: Path, passphrase: str, *, database_url: str, data_dir: Path, node_id: str
) -> InitReport:
    """Make a node's data directory from the bundle at `source`; nothing is written
    unless the bundle opens and its master key is the database's."""
    data_dir = _empty_or_absent(data_dir)
    payload, check = _open(source, passphrase)
    await _database_agrees(database_url, check)
    try:
        written = lay_out(payload, data_dir, database_url, node_id)
    except BundleError as exc:
        raise CliError(f"{source}: {exc}") from None
    except OSError as exc:
        raise CliError(f"{data_dir}: cannot write ({exc.strerror})") from None
    report, _ = await initialise(str(data_dir), None)
    report.created[:0] = [f"{name} (from the key bundle)" for name in written]
    return report

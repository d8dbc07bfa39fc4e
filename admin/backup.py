"""`barid backup` and `barid restore`: what goes into a backup and where it comes back.

Owns: choosing the files (the data directory, the configuration and the files it
names outside the data directory), the database copy, the manifest metadata, and
the restore order: verify the whole archive and every precondition first, then
write. Must not: print (it reports through `say`) or define the archive format
(admin.backup_archive does).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import stat
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path, PurePosixPath
from typing import Any

from admin import backup_database as db
from admin.backup_archive import ArchiveWriter
from admin.errors import CliError
from gateway.config import Settings
from gateway.serve import PID_FILE
from gateway.store import migrate
from gateway.store.db import create_engine

Say = Callable[[str], None]
CONFIG_NAME = "barid.toml"
EXTERNAL = "external"


@dataclass(frozen=True)
class FileItem:
    origin: Path
    restore_to: str  # relative POSIX path under the restored data directory
    role: str  # data | config | external


def _regular(path: Path) -> bool:
    try:
        return stat.S_ISREG(path.lstat().st_mode)
    except OSError:
        return False


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _external(path: Path) -> str:
    return str(PurePosixPath(EXTERNAL, *path.resolve().parts[1:]))


def plan_files(settings: Settings, config_file: Path | None, skip: set[Path]) -> list[FileItem]:
    """Every file a restored gateway needs, except the database itself."""
    data = settings.data_dir
    skip = set(skip) | {data / PID_FILE, data / "barid.tmp"}
    if db.kind_of(settings.database_url) == "sqlite":
        base = db.sqlite_path(settings.database_url).resolve()
        skip |= {base, *(base.with_name(base.name + s) for s in ("-wal", "-shm", "-journal"))}
    items: dict[Path, FileItem] = {}
    if config_file is not None and config_file.exists():
        config_file = config_file.resolve()
        where = config_file.relative_to(data).as_posix() if _inside(config_file, data) else None
        items[config_file] = FileItem(config_file, where or CONFIG_NAME, "config")
    for root, dirs, files in os.walk(data):
        dirs.sort()
        for name in sorted(files):
            path = Path(root, name)
            if path.resolve() in skip or path in items or not _regular(path):
                continue
            items[path] = FileItem(path, path.relative_to(data).as_posix(), "data")
    named = [settings.tls_cert, settings.tls_key, settings.policy_file]
    for peer in settings.peers.values():
        named += [Path(p) for p in (peer.tls_trust, peer.dkim_keys) if p]
    named += [Path(s.password_file) for s in settings.mailservers.values()]
    keys_dir = settings.keys_dir
    if not _inside(keys_dir, data):
        named += sorted(p for p in keys_dir.rglob("*") if _regular(p))
    for path in named:
        path = path.expanduser().resolve()
        if path not in items and not _inside(path, data) and _regular(path):
            items[path] = FileItem(path, _external(path), "external")
    return list(items.values())


def _percent(say: Say, label: str) -> Callable[[int, int], None]:
    shown = [-1]

    def progress(done: int, total: int) -> None:
        step = 100 if total <= 0 else done * 100 // total // 10 * 10
        if step > shown[0]:
            shown[0] = step
            say(f"{label}: {step}%")

    return progress


def _schema(url: str) -> str | None:
    async def go() -> str | None:
        engine = create_engine(url)
        try:
            return await migrate.current_revision(engine)
        finally:
            await engine.dispose()

    try:
        return asyncio.run(go())
    except Exception:
        raise CliError("database unavailable (cannot read its schema revision)") from None


def _barid_version() -> str:
    try:
        return version("barid")
    except PackageNotFoundError:
        return "unknown"


def create_backup(settings: Settings, config_file: Path | None, dest: Path, passphrase: bytes,
                  *, pg_bindir: str | None, say: Say) -> dict[str, Any]:  # fmt: skip
    """Write the encrypted, integrity-checked archive `dest` (refuses an existing one)."""
    dest = dest.expanduser().absolute()
    if dest.exists():
        raise CliError(f"{dest} already exists; choose a new file name")
    if not dest.parent.is_dir():
        raise CliError(f"{dest.parent} is not a directory")
    if _inside(dest.resolve(), settings.data_dir):
        raise CliError("write the backup outside the data directory (it is part of the backup)")
    url = settings.database_url
    kind = db.kind_of(url)
    schema = _schema(url) if kind == "postgresql" else None
    items = plan_files(settings, config_file, {dest, dest.with_name(dest.name + ".partial")})
    say("deriving the archive key from the passphrase")
    writer = ArchiveWriter(dest, passphrase)
    try:
        with tempfile.TemporaryDirectory(prefix=".barid-backup-", dir=dest.parent) as tmp:
            os.chmod(tmp, 0o700)
            say(f"copying the {kind} database (online, consistent)")
            try:
                copy = Path(tmp, "database")
                size = (db.sqlite_copy(url, copy) if kind == "sqlite"
                        else db.pg_dump(url, copy, pg_bindir))  # fmt: skip
            except db.DatabaseBackupError as exc:
                raise CliError(str(exc)) from None
            if kind == "sqlite":
                schema = db.sqlite_revision(copy)
            member = "database/barid." + ("sqlite3" if kind == "sqlite" else "pgdump")
            sealing = _percent(say, f"sealing the database ({size} bytes)")
            _, digest = writer.add_file(member, copy, sealing)
            files = []
            say(f"sealing {len(items)} files (configuration, keys, TLS, policy)")
            for index, item in enumerate(items, start=1):
                name = f"files/{index:04d}"
                mode = item.origin.stat().st_mode & 0o777
                try:
                    plain_size, plain_sha = writer.add_file(name, item.origin)
                except OSError as exc:
                    raise CliError(f"cannot read {item.origin} ({exc.strerror})") from None
                files.append({"member": name, "path": item.restore_to, "role": item.role,
                              "origin": str(item.origin), "mode": mode, "size": plain_size,
                              "sha256": plain_sha})  # fmt: skip
        metadata = {
            "created": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "barid_version": _barid_version(),
            "hostname": settings.server.hostname,
            "source_data_dir": str(settings.data_dir),
            "database": {
                "kind": kind,
                "member": member,
                "schema": schema,
                "size": size,
                "sha256": digest,
            },
            "files": files,
        }
        writer.finish(metadata)
    except BaseException:
        writer.abandon()
        raise
    say(f"backup written: {dest}")
    return {"archive": str(dest), "size": dest.stat().st_size, "database": metadata["database"],
            "files": len(files), "created": metadata["created"]}  # fmt: skip

"""`barid restore SRC --data-dir DIR`: a verified archive back into a new data directory.

Owns: the restore order. First every check (an empty or new DIR, the whole archive
verified against its signed manifest, safe paths, the target database empty and
its tools present), then the writing: files, then the database. Must not: write
anything before the checks pass, or leave a half-restored DIR behind on failure.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import tomllib
from pathlib import Path, PurePosixPath
from typing import Any

from admin import backup_database as db
from admin.backup import CONFIG_NAME, Say, _percent
from admin.backup_archive import ArchiveError, Keys, extract, verify
from admin.errors import EXIT_USAGE, CliError


def point_data_dir_here(config: str) -> str:
    """The configuration text with `server.data_dir` set to "." (the file's folder)."""
    lines = config.splitlines()
    section, server_at = "", None
    for i, line in enumerate(lines):
        stripped = line.strip()
        if stripped.startswith("["):
            section = stripped.strip("[] ")
            server_at = i if section == "server" else server_at
        elif section == "server" and stripped.split("=", 1)[0].strip() == "data_dir":
            lines[i] = 'data_dir = "."'
            return "\n".join(lines) + "\n"
    if server_at is not None:
        lines.insert(server_at + 1, 'data_dir = "."')
    else:
        lines = ["[server]", 'data_dir = "."', "", *lines]
    return "\n".join(lines) + "\n"


def _safe(path: object) -> str:
    text = str(path)
    pure = PurePosixPath(text)
    if not text or pure.is_absolute() or any(p in ("..", ".") for p in pure.parts):
        raise ArchiveError(f"the manifest names an unsafe path {text!r}")
    return text


def _check_target(target: Path) -> bool:
    """True when DIR exists (and is empty); refuses anything else."""
    if target.exists():
        if not target.is_dir():
            raise CliError(f"{target} is not a directory", EXIT_USAGE)
        if any(target.iterdir()):
            raise CliError(f"{target} is not empty; restore into a new or empty directory",
                           EXIT_USAGE)  # fmt: skip
        return True
    return False


def _plan(metadata: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    files, database = metadata.get("files"), metadata.get("database")
    if not isinstance(files, list) or not isinstance(database, dict):
        raise ArchiveError("the manifest is damaged (no file list)")
    paths = set()
    for item in files:
        path = _safe(item.get("path"))
        if path in paths or path == "barid.db":
            raise ArchiveError(f"the manifest names {path!r} twice")
        paths.add(path)
    if database.get("kind") not in ("sqlite", "postgresql"):
        raise ArchiveError("the manifest is damaged (unknown database kind)")
    return files, database


def _config_text(src: Path, keys: Keys, files: list[dict[str, Any]]) -> str | None:
    """The restored configuration (data_dir pointed at DIR), checked before writing."""
    config = next((f for f in files if f.get("role") == "config"), None)
    if config is None:
        return None
    with tempfile.SpooledTemporaryFile() as buf:
        extract(src, keys, str(config["member"]), buf)
        buf.seek(0)
        raw = buf.read().decode("utf-8")
    text = point_data_dir_here(raw) if config["path"] == CONFIG_NAME else raw
    try:
        data_dir = tomllib.loads(text).get("server", {}).get("data_dir", "./barid-data")
    except tomllib.TOMLDecodeError:
        raise ArchiveError("the archived configuration is not valid TOML") from None
    if config["path"] == CONFIG_NAME and data_dir != ".":
        raise ArchiveError("the archived configuration cannot be pointed at the new directory")
    return text if config["path"] == CONFIG_NAME else None


def _write(path: Path, src: Path, keys: Keys, item: dict[str, Any], text: str | None) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    mode = int(item.get("mode", 0o600)) & 0o777
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        if text is not None:
            out.write(text.encode("utf-8"))
        elif extract(src, keys, str(item["member"]), out) != item.get("sha256"):
            raise ArchiveError(f"{item['path']}: content differs from the manifest")
        out.flush()
        os.fsync(out.fileno())
    os.chmod(path, mode)


def restore_backup(src: Path, target: Path, passphrase: bytes, *, database_url: str | None,
                   pg_bindir: str | None, say: Say) -> dict[str, Any]:  # fmt: skip
    """Verify `src` completely, then restore it into `target` (new or empty)."""
    target = target.expanduser().absolute()
    if not src.is_file():
        raise CliError(f"{src}: no such archive", EXIT_USAGE)
    existed = _check_target(target)
    say(f"verifying {src} (every member against the signed manifest)")
    try:
        keys, metadata = verify(src, passphrase, _percent(say, "verifying"))
        files, database = _plan(metadata)
        config_text = _config_text(src, keys, files)
    except ArchiveError as exc:
        raise CliError(f"{src}: {exc}; nothing was restored") from None
    kind = database["kind"]
    if kind == "postgresql" and not database_url:
        raise CliError("this backup holds a PostgreSQL database: give --database-url of an"
                       " empty database to restore it into", EXIT_USAGE)  # fmt: skip
    if kind == "sqlite" and database_url:
        raise CliError(f"this backup holds a SQLite database, restored as {target}/barid.db;"
                       " --database-url is for PostgreSQL backups", EXIT_USAGE)  # fmt: skip
    if kind == "postgresql":
        assert database_url is not None
        if db.kind_of(database_url) != "postgresql":
            raise CliError("--database-url must be a postgresql+asyncpg:// URL", EXIT_USAGE)
        try:
            db.pg_check_empty(database_url)
            db.pg_tool("pg_restore", db.server_major(database_url), pg_bindir)
        except db.DatabaseBackupError as exc:
            raise CliError(f"{exc}; nothing was restored") from None
    say(f"archive intact; restoring into {target}")
    try:
        _restore_into(src, target, keys, files, database, config_text,
                      database_url=database_url, pg_bindir=pg_bindir, say=say)  # fmt: skip
    except BaseException:
        _undo(target, existed)
        raise
    external = [f["path"] for f in files if f.get("role") == "external"]
    return {
        "data_dir": str(target),
        "files": len(files),
        "database": {
            "kind": kind,
            "schema": database.get("schema"),
            "restored_to": _hide_password(database_url)
            if database_url
            else str(target / "barid.db"),
        },
        "external": external,
        "created": metadata.get("created"),
        "source_data_dir": metadata.get("source_data_dir"),
    }


def _hide_password(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _restore_into(src: Path, target: Path, keys: Keys, files: list[dict[str, Any]],
                  database: dict[str, Any], config_text: str | None, *,
                  database_url: str | None, pg_bindir: str | None, say: Say) -> None:  # fmt: skip
    target.mkdir(mode=0o700, parents=True, exist_ok=True)
    say(f"writing {len(files)} files")
    for item in files:
        text = config_text if item.get("role") == "config" and config_text else None
        try:
            _write(target / item["path"], src, keys, item, text)
        except ArchiveError as exc:
            raise CliError(str(exc)) from None
    member = str(database["member"])
    try:
        if database["kind"] == "sqlite":
            say("writing the SQLite database")
            _write(target / "barid.db", src, keys, {"member": member, "mode": 0o600,
                   "sha256": database.get("sha256"), "path": "barid.db"}, None)  # fmt: skip
            db.sqlite_check(target / "barid.db")
            return
        assert database_url is not None
        with tempfile.TemporaryDirectory(prefix=".barid-restore-") as tmp:
            dump = Path(tmp, "database.pgdump")
            with dump.open("wb") as out:
                if extract(src, keys, member, out) != database.get("sha256"):
                    raise ArchiveError("the database dump differs from the manifest")
            say("loading the PostgreSQL dump (pg_restore, one transaction)")
            db.pg_restore(database_url, dump, pg_bindir)
    except (ArchiveError, db.DatabaseBackupError) as exc:
        raise CliError(f"{exc}; the partial restore was removed") from None


def _undo(target: Path, existed: bool) -> None:
    if not existed:
        shutil.rmtree(target, ignore_errors=True)
        return
    for child in target.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)

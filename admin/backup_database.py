"""Consistent copies of the database while the gateway runs, and putting them back.

Owns: SQLite's online backup API, `pg_dump`/`pg_restore` (of the server's own
major version) and the checks around them (an empty target database). Must not:
encrypt, choose file names in the archive, or pass a database password on a
command line (libpq reads it from PGPASSWORD).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import SQLAlchemyError

from gateway.store.db import create_engine

PG_TOOL_TIMEOUT_SECONDS = 6 * 3600
_SSL_MODES = {"require", "verify-ca", "verify-full", "prefer", "allow", "disable"}


class DatabaseBackupError(Exception):
    """A one-line reason; never contains a password."""


def kind_of(url: str) -> str:
    return "sqlite" if make_url(url).get_backend_name() == "sqlite" else "postgresql"


def sqlite_path(url: str) -> Path:
    database = make_url(url).database
    if not database or database == ":memory:":
        raise DatabaseBackupError("the SQLite database URL names no file")
    return Path(database)


def sqlite_copy(url: str, dest: Path) -> int:
    """An online, consistent copy (one read transaction; writers go on). Its size."""
    source = sqlite_path(url)
    if not source.exists():
        raise DatabaseBackupError(f"database {source} does not exist")
    try:
        src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=30)
        try:
            dst = sqlite3.connect(dest)
            try:
                src.backup(dst)  # all pages in one step: one consistent snapshot
                dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
            finally:
                dst.close()
        finally:
            src.close()
    except sqlite3.Error as exc:
        raise DatabaseBackupError(f"SQLite backup failed ({exc})") from None
    finally:
        _keep_owner(source)
    return dest.stat().st_size


def _keep_owner(database: Path) -> None:
    """Reading a WAL database creates its -wal/-shm files when no gateway has them
    open; made by root, they would lock the gateway's own user out. Give them the
    database file's owner."""
    if os.geteuid() != 0:
        return
    owner = database.stat()
    for suffix in ("-wal", "-shm"):
        side = database.with_name(database.name + suffix)
        try:
            info = side.stat()
            if (info.st_uid, info.st_gid) != (owner.st_uid, owner.st_gid):
                os.chown(side, owner.st_uid, owner.st_gid)
        except OSError:
            continue


def sqlite_revision(path: Path) -> str | None:
    """The schema revision recorded in a SQLite file (the copy, not the live one)."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        return None
    return str(row[0]) if row else None


def sqlite_check(path: Path) -> None:
    """The restored file opens and passes SQLite's own integrity check."""
    try:
        conn = sqlite3.connect(path)
        try:
            row = conn.execute("PRAGMA integrity_check").fetchone()
            conn.execute("PRAGMA journal_mode=WAL")  # the gateway's own mode
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise DatabaseBackupError(f"restored SQLite database does not open ({exc})") from None
    if not row or row[0] != "ok":
        raise DatabaseBackupError("restored SQLite database fails its integrity check")


def _libpq(url: str) -> tuple[list[str], dict[str, str]]:
    """(conninfo arguments without the password, environment with PGPASSWORD)."""
    parsed: URL = make_url(url)
    parts = [f"dbname={parsed.database or ''}"]
    if parsed.host:
        parts.append(f"host={parsed.host}")
    if parsed.port:
        parts.append(f"port={parsed.port}")
    if parsed.username:
        parts.append(f"user={parsed.username}")
    ssl = str(parsed.query.get("ssl", "")) or str(parsed.query.get("sslmode", ""))
    if ssl in _SSL_MODES:
        parts.append(f"sslmode={ssl}")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    if parsed.password:
        env["PGPASSWORD"] = str(parsed.password)
    return ["--dbname", " ".join(parts)], env


async def _scalar(url: str, sql: str) -> object:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return (await conn.execute(text(sql))).scalar()
    except (SQLAlchemyError, OSError) as exc:
        raise DatabaseBackupError(f"database unavailable ({type(exc).__name__})") from None
    finally:
        await engine.dispose()


def server_major(url: str) -> int:
    return int(str(asyncio.run(_scalar(url, "SHOW server_version_num")))) // 10000


def pg_tool(name: str, major: int, bindir: str | None) -> str:
    """`name` of the server's major version: --pg-bindir, Debian's layout, then PATH."""
    candidates = [Path(bindir) / name] if bindir else []
    candidates.append(Path(f"/usr/lib/postgresql/{major}/bin/{name}"))
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
    found = shutil.which(name)
    if found is None:
        raise DatabaseBackupError(
            f"{name} not found (PostgreSQL {major} client tools; give --pg-bindir DIR)"
        )
    return found


def _run(args: list[str], env: dict[str, str], what: str) -> None:
    try:
        done = subprocess.run(args, env=env, capture_output=True, timeout=PG_TOOL_TIMEOUT_SECONDS,
                              stdin=subprocess.DEVNULL, check=False)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DatabaseBackupError(f"{what} failed ({type(exc).__name__})") from None
    if done.returncode != 0:
        lines = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise DatabaseBackupError(f"{what} failed: {lines[-1] if lines else done.returncode}")


def pg_dump(url: str, dest: Path, bindir: str | None) -> int:
    """A consistent dump (pg_dump's one snapshot) in custom format. Its size."""
    tool = pg_tool("pg_dump", server_major(url), bindir)
    conninfo, env = _libpq(url)
    _run([tool, "--format=custom", "--no-password", "--file", str(dest), *conninfo], env,
         "pg_dump")  # fmt: skip
    return dest.stat().st_size


def pg_check_empty(url: str) -> None:
    """Restore only into a database with no tables of its own."""
    count = asyncio.run(
        _scalar(
            url,
            "SELECT count(*) FROM information_schema.tables"
            " WHERE table_schema NOT IN ('pg_catalog', 'information_schema')",
        )
    )
    if count:
        raise DatabaseBackupError("the target PostgreSQL database is not empty")


def pg_restore(url: str, dump: Path, bindir: str | None) -> None:
    """All or nothing: one transaction; objects owned by the connecting role."""
    tool = pg_tool("pg_restore", server_major(url), bindir)
    conninfo, env = _libpq(url)
    _run([tool, "--no-owner", "--no-privileges", "--exit-on-error", "--single-transaction",
          "--no-password", *conninfo, str(dump)], env, "pg_restore")  # fmt: skip

"""A real PostgreSQL for tests and benchmarks: a cluster in a temporary directory
on a loopback port, started from the machine's own binaries (initdb + pg_ctl),
as the `postgres` user when run as root (initdb refuses root); databases made
and dropped on it. Durability is off (fsync, synchronous_commit): never for data
anyone keeps. Fixtures live in tests/conftest.py.
"""

from __future__ import annotations

import asyncio
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from testkit.ports import free_port
from testkit.tools import missing


@dataclass(frozen=True)
class PgServer:
    host: str
    port: int
    user: str

    def url(self, database: str) -> str:
        return f"postgresql+asyncpg://{self.user}@{self.host}:{self.port}/{database}"

    def dsn(self, database: str) -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{database}"


def _pg_bindir() -> Path | None:
    found = shutil.which("pg_ctl")
    if found:
        return Path(os.path.realpath(found)).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), reverse=True)
    return Path(candidates[0]).parent if candidates else None


class PgCluster:
    """A PostgreSQL cluster in a temporary directory, on a loopback port."""

    def __init__(self, on_missing: Callable[[str], None] = missing) -> None:
        """`on_missing(reason)` is called (and must raise) when PostgreSQL cannot
        run here: tests skip (or fail under BARID_REQUIRE_ALL=1), benchmarks stop."""
        bindir = _pg_bindir()
        if bindir is None or not (bindir / "initdb").exists():
            on_missing("PostgreSQL server binaries (initdb, pg_ctl) not found")
        assert bindir is not None
        self.bindir = bindir
        self.prefix: list[str] = []
        self.base = Path(tempfile.mkdtemp(prefix="bpg", dir="/tmp"))
        if os.geteuid() == 0:
            try:
                account = pwd.getpwnam("postgres")
            except KeyError:
                shutil.rmtree(self.base, ignore_errors=True)
                on_missing("running as root and no 'postgres' user to run PostgreSQL as")
                raise AssertionError("unreachable") from None
            os.chown(self.base, account.pw_uid, account.pw_gid)
            self.prefix = ["runuser", "-u", "postgres", "--"]
        self.data, self.log = self.base / "data", self.base / "server.log"
        self.port = free_port()
        subprocess.run(
            [*self.prefix, str(bindir / "initdb"), "-D", str(self.data), "-U", "barid",
             "--auth=trust", "-E", "UTF8", "--no-sync", "--locale=C"],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        self.server = PgServer("127.0.0.1", self.port, "barid")

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 -c fsync=off"
            " -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        subprocess.run(
            [*self.prefix, str(self.bindir / "pg_ctl"), "-D", str(self.data), "-o", options,
             "-l", str(self.log), "-w", "-t", "60", "start"],
            check=True, capture_output=True, timeout=90,
        )  # fmt: skip

    def stop(self, mode: str = "immediate") -> None:
        subprocess.run(
            [*self.prefix, str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", mode,
             "-w", "stop"],
            check=False, capture_output=True, timeout=60,
        )  # fmt: skip

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)

    def version(self) -> str:
        """`postgres --version`, e.g. "postgres (PostgreSQL) 15.14"."""
        done = subprocess.run([str(self.bindir / "postgres"), "--version"], capture_output=True,
                              text=True, timeout=30, check=False)  # fmt: skip
        return done.stdout.strip()


@contextmanager
def postgres_cluster(on_missing: Callable[[str], None] = missing) -> Iterator[PgCluster]:
    """A started cluster, stopped and removed at the end."""
    cluster = PgCluster(on_missing)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.remove()


async def _admin(server: PgServer, sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(server.dsn("postgres"), timeout=30)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def create_pg_database(server: PgServer, prefix: str = "t") -> str:
    """A new, empty database on `server`; its name (PREFIX_<random>)."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(server, f'CREATE DATABASE "{name}"'))
    return name


def drop_pg_database(server: PgServer, name: str) -> None:
    asyncio.run(_admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

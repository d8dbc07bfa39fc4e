"""Shared fixtures: the development-port guard, tool requirements, a real
PostgreSQL server, databases, the CLI.

The development default ports (5870, 4650, 2525, 1430, 9930, 8080, 8443) are
held for the whole session, so the suite behaves as beside a running
`make demo`: every test listens on free ports (tests/port_support.py).

`require_tool` skips a test when an external tool is missing, or fails it when
BARID_REQUIRE_ALL=1 (CI), so a complete environment never skips silently.
The PostgreSQL server is started once per session from the machine's own
binaries (initdb + pg_ctl) in a temporary directory on a loopback port, as the
`postgres` user when the suite runs as root (initdb refuses root), and stopped
at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import io
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from port_support import DEVELOPMENT_PORTS, PortGuard, free_port

REQUIRE_ALL = os.environ.get("BARID_REQUIRE_ALL") == "1"

# The live gateway and demo fixtures (tests/live_gateway.py), for every directory.
pytest_plugins = ["live_gateway"]


def missing(reason: str) -> None:
    """Skip, or fail under BARID_REQUIRE_ALL=1."""
    if REQUIRE_ALL:
        pytest.fail(f"{reason} (required because BARID_REQUIRE_ALL=1)")
    pytest.skip(reason)


# ---------------------------------------------------------------- ports


@pytest.fixture(scope="session", autouse=True)
def development_ports_guard() -> Iterator[PortGuard]:
    """Hold the development default ports that are free for the whole session (as
    if `make demo` ran beside the suite): a test that binds one fails with
    EADDRINUSE, one that dials one fails (see `no_development_port_dialled`).
    Under pytest-xdist every worker tries; a port another worker or a running
    demo already holds is skipped."""
    guard = PortGuard(DEVELOPMENT_PORTS)
    try:
        yield guard
    finally:
        guard.close()


@pytest.fixture(autouse=True)
def no_development_port_dialled(development_ports_guard: PortGuard) -> Iterator[None]:
    mark = development_ports_guard.count()
    yield
    dialled = development_ports_guard.since(mark)
    if dialled:
        pytest.fail(f"the test connected to development port(s) {sorted(set(dialled))}; "
                    "tests use free ports only (tests/port_support.py)")  # fmt: skip


# ---------------------------------------------------------------- PostgreSQL


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

    def __init__(self) -> None:
        bindir = _pg_bindir()
        if bindir is None or not (bindir / "initdb").exists():
            missing("PostgreSQL server binaries (initdb, pg_ctl) not found")
        assert bindir is not None
        self.bindir = bindir
        self.prefix: list[str] = []
        self.base = Path(tempfile.mkdtemp(prefix="bpg", dir="/tmp"))
        if os.geteuid() == 0:
            try:
                account = pwd.getpwnam("postgres")
            except KeyError:
                missing("running as root and no 'postgres' user to run PostgreSQL as")
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


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PgServer]:
    cluster = PgCluster()
    try:
        cluster.start()
        yield cluster.server
    finally:
        cluster.remove()


@pytest.fixture
def own_postgres() -> Iterator[PgCluster]:
    """A PostgreSQL cluster of this test's own, started; the test may stop and start it."""
    cluster = PgCluster()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.remove()


async def _admin(server: PgServer, sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(server.dsn("postgres"))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def create_pg_database(server: PgServer) -> str:
    name = "t_" + uuid.uuid4().hex[:12]
    asyncio.run(_admin(server, f'CREATE DATABASE "{name}"'))
    return name


def drop_pg_database(server: PgServer, name: str) -> None:
    asyncio.run(_admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def pg_url(postgres_server: PgServer) -> Iterator[str]:
    """A fresh, empty database on the session's PostgreSQL server."""
    name = create_pg_database(postgres_server)
    try:
        yield postgres_server.url(name)
    finally:
        drop_pg_database(postgres_server, name)


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database: the embedded SQLite default, then a real PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'barid.db'}"
    return str(request.getfixturevalue("pg_url"))


# ---------------------------------------------------------------- the CLI


@dataclass
class CliResult:
    code: int
    out: str
    err: str


class BaridCli:
    """Runs `barid ARGS` in-process with an environment of its own."""

    def __init__(self, env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
        self.env = env
        self._monkeypatch = monkeypatch

    def __call__(self, *args: str, stdin: str = "") -> CliResult:
        from admin.cli import main

        out, err = io.StringIO(), io.StringIO()
        with self._monkeypatch.context() as mp:
            for key in [
                k for k in os.environ if k.startswith("BARID_") and k != "BARID_REQUIRE_ALL"
            ]:
                mp.delenv(key)
            for key, value in self.env.items():
                mp.setenv(key, value)
            mp.setattr(sys, "stdin", io.StringIO(stdin))
            code = 0
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                try:
                    main(list(args))
                except SystemExit as exc:
                    code = int(exc.code or 0) if not isinstance(exc.code, str) else 1
        return CliResult(code, out.getvalue(), err.getvalue())


@pytest.fixture
def barid_env(tmp_path: Path) -> dict[str, str]:
    """BARID_* environment for a gateway whose data dir is tmp_path/data."""
    data = tmp_path / "data"
    return {"BARID_CONFIG": str(data / "barid.toml")}


@pytest.fixture
def barid(barid_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> BaridCli:
    """The CLI on an initialised data dir (SQLite)."""
    cli = BaridCli(barid_env, monkeypatch)
    result = cli("init", "--data-dir", str(tmp_path / "data"))
    assert result.code == 0, result.err
    return cli


@pytest.fixture(params=["sqlite", "postgres"])
def barid_any(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> BaridCli:
    """The CLI on an initialised data dir, on SQLite and on PostgreSQL."""
    env = {"BARID_CONFIG": str(tmp_path / "data" / "barid.toml")}
    if request.param == "postgres":
        env["BARID_DATABASE__URL"] = str(request.getfixturevalue("pg_url"))
    cli = BaridCli(env, monkeypatch)
    result = cli("init", "--data-dir", str(tmp_path / "data"))
    assert result.code == 0, result.err
    return cli


@pytest.fixture
def make_cli(monkeypatch: pytest.MonkeyPatch) -> Callable[[dict[str, str]], BaridCli]:
    """Build a CLI runner with a given BARID_* environment."""
    return lambda env: BaridCli(env, monkeypatch)


@pytest.fixture
def need_tool() -> Callable[[str], str]:
    """`need_tool("gpg")`: the tool's path; skips (or fails under BARID_REQUIRE_ALL=1)."""

    def need(name: str) -> str:
        # Daemons and their tools (dovecot, smtp-sink) live in /usr/sbin on Debian.
        path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
        if path is None:
            missing(f"{name} is not installed")
        return str(path)

    return need


@pytest.fixture
def port_factory() -> Callable[[], int]:
    """A free TCP port on 127.0.0.1 (bound once, then released)."""
    return free_port

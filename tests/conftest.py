"""Shared fixtures: the development-port guard, tool requirements, a real
PostgreSQL server, databases, the CLI.

The development default ports (5870, 4650, 2525, 1430, 9930, 8080, 8443) are
held for the whole session, so the suite behaves as beside a running
`make demo`: every test listens on free ports (testkit/ports.py).

`require_tool` skips a test when an external tool is missing, or fails it when
BARID_REQUIRE_ALL=1 (CI), so a complete environment never skips silently.
The PostgreSQL server is started once per session from the machine's own
binaries (initdb + pg_ctl) in a temporary directory on a loopback port, as the
`postgres` user when the suite runs as root (initdb refuses root), and stopped
at the end.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from testkit.cli import BaridCli
from testkit.gateway import (
    Live,
    demo_credentials,
    drop_gnupghome,
    import_demo_keys,
    make_demo,
    new_gnupghome,
    running,
)
from testkit.ports import DEVELOPMENT_PORTS, PortGuard, free_port
from testkit.postgres import (
    PgCluster,
    PgServer,
    create_pg_database,
    drop_pg_database,
    postgres_cluster,
)
from testkit.tools import find_tool, missing

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
                    "tests use free ports only (testkit/ports.py)")  # fmt: skip


# ---------------------------------------------------------------- PostgreSQL


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PgServer]:
    with postgres_cluster() as cluster:
        yield cluster.server


@pytest.fixture
def own_postgres() -> Iterator[PgCluster]:
    """A PostgreSQL cluster of this test's own, started; the test may stop and start it."""
    cluster = PgCluster()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.remove()


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

    return find_tool


@pytest.fixture
def port_factory() -> Callable[[], int]:
    """A free TCP port on 127.0.0.1 (bound once, then released)."""
    return free_port


# ---------------------------------------------------------------- the demo and a live gateway


@pytest.fixture(scope="session")
def demo_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("demo") / "d"
    make_demo(data)
    return data


@pytest.fixture(scope="session")
def credentials(demo_template: Path) -> dict[str, dict[str, Any]]:
    return demo_credentials(demo_template)


@pytest.fixture(scope="session")
def gnupghome(demo_template: Path, credentials: dict[str, dict[str, Any]]) -> Iterator[Path]:
    """Every demo employee's secret key, as a mail client would hold it."""
    if shutil.which("gpg") is None:
        missing("gpg is not installed")
    home = new_gnupghome()
    import_demo_keys(home, credentials)
    yield home
    drop_gnupghome(home)


@pytest.fixture
async def live(demo_template: Path, tmp_path: Path,
               credentials: dict[str, dict[str, Any]]) -> AsyncIterator[Live]:  # fmt: skip
    """The demo gateway, whole, in the test's loop, on free ports."""
    data = tmp_path / "d"
    shutil.copytree(demo_template, data)
    # Tests make many forged lookups from 127.0.0.1; the radar's throttle is
    # tested on an app of its own (tests/verification/test_verification_radar.py).
    async with running(data, credentials,
                       {"BARID_HTTP__VERIFY_FAILURES_PER_10_MINUTES": "1000000"}) as gateway:  # fmt: skip
        yield gateway

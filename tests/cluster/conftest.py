"""Fixtures of the cluster tests: a first node on a real PostgreSQL, its key bundle,
and helpers that count rows and run `barid serve` as a child process."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from gateway.store.db import create_engine
from testkit.cli import BaridCli
from testkit.ports import EPHEMERAL_PORTS_ENV

PASSPHRASE = "correct horse battery staple"
UNSAFE_DB = {"BARID_DATABASE__ALLOW_UNSAFE_DURABILITY": "true"}


@dataclass
class Cluster:
    pg_url: str
    first: Path  # node A's data dir
    bundle: Path
    cli: Callable[[dict[str, str]], BaridCli]

    def node(self, data: Path, **extra: str) -> BaridCli:
        """The CLI on data dir `data` (its barid.toml names the database or not)."""
        return self.cli({"BARID_CONFIG": str(data / "barid.toml"), **extra})

    @property
    def a(self) -> BaridCli:
        return self.node(self.first, BARID_DATABASE__URL=self.pg_url)

    def join(self, data: Path, node_id: str, passphrase: str = PASSPHRASE) -> Any:
        return self.cli({})("init", "--join", str(self.bundle), "--database-url", self.pg_url,
                            "--data-dir", str(data), "--node-id", node_id,
                            stdin=passphrase + "\n")  # fmt: skip


def counts(
    pg_url: str, tables: tuple[str, ...] = ("audit_events", "cluster_values")
) -> dict[str, int]:
    async def go() -> dict[str, int]:
        engine = create_engine(pg_url)
        try:
            async with engine.connect() as conn:
                out = {}
                for table in tables:
                    query = text(f"SELECT count(*) FROM {table}")  # noqa: S608 - fixed names
                    out[table] = int((await conn.execute(query)).scalar() or 0)
                return out
        finally:
            await engine.dispose()

    return asyncio.run(go())


def wipe_key_check(pg_url: str) -> None:
    """Remove the master-key check value, as in a database from before migration 0015."""

    async def go() -> None:
        engine = create_engine(pg_url)
        try:
            async with engine.begin() as conn:
                await conn.execute(text("DELETE FROM cluster_values"))
        finally:
            await engine.dispose()

    asyncio.run(go())


def serve(data: Path, **env: str) -> subprocess.Popen[bytes]:
    """`barid serve` on `data` in a child process, every listener on a free port."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("BARID_")}
    full |= {**EPHEMERAL_PORTS_ENV, **UNSAFE_DB, "BARID_ALLOW_ROOT": "1",
             "BARID_CONFIG": str(data / "barid.toml"), **env}  # fmt: skip
    return subprocess.Popen([sys.executable, "-m", "admin", "serve"], env=full,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip


@pytest.fixture
def cluster(pg_url: str, tmp_path: Path, make_cli: Callable[[dict[str, str]], BaridCli]) -> Cluster:
    """Node A initialised on `pg_url`, and its key bundle (passphrase PASSPHRASE)."""
    c = Cluster(pg_url, tmp_path / "a", tmp_path / "cluster.keys", make_cli)
    assert c.a("init", "--data-dir", str(c.first)).code == 0
    done = c.a("cluster", "export-keys", str(c.bundle), stdin=PASSPHRASE + "\n")
    assert done.code == 0, done.err
    return c

"""A gateway refuses to start on a PostgreSQL that may lose acknowledged mail
(fsync or synchronous_commit off), with a one-line reason; the suite's own fast
server (fsync=off) is accepted only under database.allow_unsafe_durability."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from gateway.config import load_settings
from gateway.serve import Gateway, StartupError

PORTS = {"BARID_SMTP__SUBMISSION_PORT": "0", "BARID_SMTP__SMTPS_PORT": "0",
         "BARID_SMTP__TRANSFER_PORT": "0", "BARID_IMAP__PORT": "0", "BARID_IMAP__IMAPS_PORT": "0",
         "BARID_HTTP__PORT": "0", "BARID_HTTP__ADMIN_PORT": "0", "BARID_SMTP__MIN_FREE_DISK_MB": "0"}  # fmt: skip


async def test_fsync_off_is_refused_unless_allowed_for_tests(
    pg_url: str, tmp_path: Path, make_cli: Any
) -> None:
    data = tmp_path / "d"
    env = {"BARID_DATABASE__URL": pg_url, "BARID_CONFIG": str(data / "barid.toml")}
    init = await asyncio.to_thread(make_cli(env), "init", "--data-dir", str(data))
    assert init.code == 0, init.err

    refused = Gateway(load_settings(data / "barid.toml", environ={"BARID_DATABASE__URL": pg_url,
                                                                  **PORTS}))  # fmt: skip
    with pytest.raises(StartupError) as exc:
        await refused.start()
    await refused.stop()
    reason = str(exc.value)
    assert "fsync=off" in reason and "synchronous_commit=off" in reason and "\n" not in reason
    assert refused.smtp_ports == {} and refused.http_port == 0  # nothing listened

    allowed = Gateway(load_settings(data / "barid.toml", environ={
        "BARID_DATABASE__URL": pg_url, "BARID_DATABASE__ALLOW_UNSAFE_DURABILITY": "1", **PORTS}))  # fmt: skip
    await allowed.start()
    try:
        assert allowed.http_port > 0
    finally:
        await allowed.stop()


def test_serve_says_why_in_one_line(pg_url: str, tmp_path: Path, make_cli: Any) -> None:
    data = tmp_path / "d"
    assert make_cli({"BARID_DATABASE__URL": pg_url})("init", "--data-dir", str(data)).code == 0
    env = {k: v for k, v in os.environ.items() if not k.startswith("BARID_")}
    env |= {"BARID_CONFIG": str(data / "barid.toml"), "BARID_DATABASE__URL": pg_url,
            "BARID_ALLOW_ROOT": "1", **PORTS}  # fmt: skip
    done = subprocess.run([sys.executable, "-m", "admin", "serve"], env=env, capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("barid: PostgreSQL runs with fsync=off and synchronous_commit=off")
    assert "docs/OPERATIONS.md" in last

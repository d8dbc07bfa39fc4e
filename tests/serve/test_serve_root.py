"""`barid serve` refuses to run as root unless told to (--allow-root or
BARID_ALLOW_ROOT=1), with a one-line reason and nothing started. (`barid demo`
only warns: tests/serve/test_serve.py.)"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from admin.commands_ops import running_as_root
from admin.errors import CliError


def test_the_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BARID_ALLOW_ROOT", raising=False)
    assert running_as_root(False, euid=1000) is False
    with pytest.raises(CliError) as refused:
        running_as_root(False, euid=0)
    assert "refusing to run as root" in str(refused.value) and "\n" not in str(refused.value)
    assert refused.value.status != 0
    assert running_as_root(True, euid=0) is True
    monkeypatch.setenv("BARID_ALLOW_ROOT", "1")
    assert running_as_root(False, euid=0) is True
    monkeypatch.setenv("BARID_ALLOW_ROOT", "yes please")  # only "1" counts
    with pytest.raises(CliError):
        running_as_root(False, euid=0)


def wait_up(proc: subprocess.Popen[bytes], port: int) -> None:
    """Until /healthz answers, then a moment more: the signal handlers come last."""
    deadline = time.monotonic() + 180
    while True:
        assert proc.poll() is None, proc.communicate()[1]
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        assert time.monotonic() < deadline, "did not start"
        time.sleep(0.2)
    time.sleep(1.0)


def _env(data: Path, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BARID_")}
    return env | {"BARID_CONFIG": str(data / "barid.toml"), "BARID_HTTP__PORT": str(port), "BARID_HTTP__ADMIN_PORT": "0",
                  "BARID_SMTP__SUBMISSION_PORT": "0", "BARID_SMTP__SMTPS_PORT": "0",
                  "BARID_SMTP__TRANSFER_PORT": "0", "BARID_IMAP__PORT": "0",
                  "BARID_IMAP__IMAPS_PORT": "0"}  # fmt: skip


@pytest.mark.skipif(os.geteuid() != 0, reason="the refusal needs root (CI runs as root)")
def test_serve_as_root_refuses_then_starts_with_allow_root(
    tmp_path: Path, make_cli: Any, port_factory: Any
) -> None:
    data = tmp_path / "d"
    assert make_cli({})("init", "--data-dir", str(data)).code == 0
    port = port_factory()
    done = subprocess.run([sys.executable, "-m", "admin", "serve"], env=_env(data, port),
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("barid: refusing to run as root"), lines
    assert "--allow-root" in lines[0]
    assert not (data / "barid.pid").exists()  # nothing was started

    proc = subprocess.Popen([sys.executable, "-m", "admin", "serve", "--allow-root"],
                            env=_env(data, port), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)  # fmt: skip
    try:
        wait_up(proc, port)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err

"""`barid serve` and `barid demo` as real processes: /healthz, /metrics, clean stop."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from testkit.ports import EPHEMERAL_PORTS_ENV, free_port

START_TIMEOUT = 120.0  # a loaded machine: `barid demo` makes keys before it serves


def get(url: str) -> tuple[int, bytes, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - loopback only
            return resp.status, resp.read(), resp.headers.get("content-type", "")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), exc.headers.get("content-type", "")


def wait_healthy(proc: subprocess.Popen[bytes], url: str) -> dict[str, Any]:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(
                f"exited early: {proc.stderr.read().decode() if proc.stderr else ''}"
            )
        try:
            status, body, _ = get(url)
        except OSError:
            time.sleep(0.1)
            continue
        assert status == 200
        return dict(json.loads(body))
    raise AssertionError("not healthy in time")


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> tuple[int, str]:
    """Signal the process; returns (exit code, stderr); stdout is kept on `proc.out`."""
    proc.send_signal(sig)
    try:
        out, err = proc.communicate(timeout=20)
        proc.out = out.decode()  # type: ignore[attr-defined]
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
        raise AssertionError("did not stop on signal") from None
    return proc.returncode, err.decode()


def barid(*args: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("BARID_")} | env
    full.setdefault("BARID_ALLOW_ROOT", "1")  # CI runs as root
    return subprocess.Popen(
        [sys.executable, "-m", "admin", *args],
        env=full, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serve_answers_health_and_metrics_and_stops_cleanly(
    tmp_path: Path, make_cli: Any, sig: int
) -> None:
    data = tmp_path / "d"
    assert make_cli({})("init", "--data-dir", str(data)).code == 0
    port = free_port()
    proc = barid("serve", env={**EPHEMERAL_PORTS_ENV, "BARID_CONFIG": str(data / "barid.toml"),
                               "BARID_HTTP__PORT": str(port), "BARID_HTTP__ADMIN_PORT": "0"})  # fmt: skip
    try:
        health = wait_healthy(proc, f"http://127.0.0.1:{port}/healthz")
        assert health == {"status": "ok", "database": "ok"}
        # Metrics are administrative: served on the admin listener only (DESIGN §10).
        assert get(f"http://127.0.0.1:{port}/metrics")[0] == 404
        assert get(f"http://127.0.0.1:{port}/nope")[0] == 404
    finally:
        code, err = stop(proc, sig)
    assert code == 0, err
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert any(e["msg"] == "listening" and e["port"] == port for e in lines)
    assert lines[-1]["msg"] == "stopped"


def test_serve_refuses_a_busy_port_with_a_clear_reason(tmp_path: Path, make_cli: Any) -> None:
    import socket

    data = tmp_path / "d"
    assert make_cli({})("init", "--data-dir", str(data)).code == 0
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = barid("serve", env={**EPHEMERAL_PORTS_ENV, "BARID_CONFIG": str(data / "barid.toml"),
                                   "BARID_HTTP__PORT": str(port), "BARID_HTTP__ADMIN_PORT": "0"})  # fmt: skip
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in err.decode()


def test_demo_starts_and_answers_healthz(tmp_path: Path) -> None:
    port = free_port()
    data = tmp_path / "demo"
    proc = barid(
        "demo",
        "--data-dir",
        str(data),
        env={**EPHEMERAL_PORTS_ENV, "BARID_HTTP__PORT": str(port), "BARID_HTTP__ADMIN_PORT": "0"},
    )
    try:
        wait_healthy(proc, f"http://127.0.0.1:{port}/healthz")
    finally:
        code, err = stop(proc)
    assert code == 0
    if os.geteuid() == 0:  # the demo keeps working as root, with a warning
        assert "warning: running the demo as root" in err
    out = proc.out  # type: ignore[attr-defined]
    credentials = json.loads((data / "demo" / "credentials.json").read_text())
    assert len(credentials) >= 6 and len({c["agency"] for c in credentials}) >= 5
    for emp in credentials:
        assert emp["address"] in out and emp["password"] in out and emp["code"] in out
        for path in emp["key_files"].values():
            assert Path(path).exists()
    assert any("s/mime certificate" in c["key_files"] for c in credentials)
    # A second run sets nothing up again and prints the same credentials.
    again = subprocess.run(
        [sys.executable, "-m", "admin", "demo", "--data-dir", str(data), "--no-serve", "--json"],
        capture_output=True, timeout=60, check=True,
    )  # fmt: skip
    assert json.loads(again.stdout)["employees"] == credentials


def test_demo_passwords_are_safe_to_paste_into_a_command_line() -> None:
    """Letters and digits only: a password starting with "-" reads as an option to
    swaks, curl and others (the commands `barid demo` prints)."""
    from admin.demo import demo_password

    made = {demo_password() for _ in range(500)}
    assert len(made) == 500
    assert all(len(p) == 16 and p.isascii() and p.isalnum() for p in made)

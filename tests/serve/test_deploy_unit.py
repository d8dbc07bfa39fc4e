"""deploy/barid.service: `systemd-analyze verify` accepts it (a copy whose ExecStart
names this checkout's real `barid`, since verify insists the binary exists), and
the shipped text keeps its sandbox: a dedicated user, a read-only system with the
data directory writable, no privilege gain, no capability unless uncommented;
`systemd-analyze security` rates its exposure 2.0 or lower ("OK")."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "deploy" / "barid.service"
SHIPPED_BARID = "/opt/barid/venv/bin/barid"


def settings(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line.strip() and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            out.setdefault(key.strip(), []).append(value.strip())
    return out


def test_the_unit_passes_systemd_analyze_verify(need_tool: Any, tmp_path: Path) -> None:
    tool = need_tool("systemd-analyze")
    barid = Path(sys.executable).parent / "barid"
    assert barid.exists()
    text = UNIT.read_text(encoding="utf-8")
    assert f"ExecStart={SHIPPED_BARID} serve\n" in text
    copy = tmp_path / "barid.service"
    copy.write_text(text.replace(f"ExecStart={SHIPPED_BARID}", f"ExecStart={barid}"))
    done = subprocess.run([tool, "verify", str(copy)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "barid.service" not in done.stderr, done.stderr  # no warning about our unit
    # The shipped file itself: the only complaint is the binary not installed here.
    shipped = subprocess.run([tool, "verify", str(UNIT)], capture_output=True, text=True,
                             timeout=60)  # fmt: skip
    complaints = [line for line in shipped.stderr.splitlines() if "barid.service" in line]
    assert all(SHIPPED_BARID in line for line in complaints), complaints
    # systemd's own rating of the sandbox (0 = locked down, 10 = exposed).
    rated = subprocess.run([tool, "security", "--offline=true", str(copy)], capture_output=True,
                           text=True, timeout=60)  # fmt: skip
    level = re.search(r"Overall exposure level for barid\.service: ([0-9.]+)", rated.stdout)
    assert level is not None, rated.stdout + rated.stderr
    assert float(level.group(1)) <= 2.0, rated.stdout


def test_the_unit_is_sandboxed_and_binds_low_ports_only_if_told() -> None:
    unit = settings(UNIT.read_text(encoding="utf-8"))
    assert unit["User"] == ["barid"] and unit["Group"] == ["barid"]
    assert unit["ExecStart"] == [f"{SHIPPED_BARID} serve"]  # never --allow-root
    assert unit["Environment"] == ["BARID_CONFIG=/var/lib/barid/barid.toml"]
    for key, value in {
        "ProtectSystem": "strict", "ReadWritePaths": "/var/lib/barid", "NoNewPrivileges": "true",
        "PrivateTmp": "true", "ProtectHome": "true", "PrivateDevices": "true",
        "RestrictSUIDSGID": "true", "UMask": "0077",
    }.items():  # fmt: skip
        assert unit[key] == [value], key
    assert unit["CapabilityBoundingSet"] == [""] and unit["AmbientCapabilities"] == [""]
    text = UNIT.read_text(encoding="utf-8")
    assert "#   AmbientCapabilities=CAP_NET_BIND_SERVICE" in text
    sysusers = (ROOT / "deploy" / "barid.sysusers").read_text(encoding="utf-8")
    tmpfiles = (ROOT / "deploy" / "barid.tmpfiles").read_text(encoding="utf-8")
    assert 'u barid - "Barid mail gateway" /var/lib/barid' in sysusers
    assert "d /var/lib/barid 0700 barid barid -" in tmpfiles

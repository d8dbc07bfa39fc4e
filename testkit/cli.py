"""The `barid` command for tests and benchmarks: in-process (`BaridCli`: an
environment of its own, every other BARID_* variable removed, stdin given,
stdout/stderr and the exit code captured) or in a child process (`run_cli`)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from testkit.gateway import clean_env

if TYPE_CHECKING:
    import pytest


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


def run_cli(data: Path | None, *args: str, stdin: str = "", timeout: float = 180) -> str:
    """`barid ARGS` in a child process on data directory `data` (None: no config);
    its stdout; RuntimeError with the end of stderr when it fails."""
    env = clean_env()
    if data is not None:
        env["BARID_CONFIG"] = str(data / "barid.toml")
    done = subprocess.run([sys.executable, "-m", "admin", *args], capture_output=True,
                          timeout=timeout, env=env, input=stdin.encode())  # fmt: skip
    if done.returncode != 0:
        tail = done.stderr.decode(errors="replace")[-2000:]
        raise RuntimeError(f"barid {' '.join(args)} exited with {done.returncode}: {tail}")
    return done.stdout.decode()


# `barid agency add` arguments for the Ministry of Health (the CLI tests' first agency).
AGENCY_MOH = ["agency", "add", "MOH", "--name-en", "Ministry of Health", "--name-ar", "وزارة الصحة",
              "--kind", "ministry", "--domain", "moh.gov.example"]  # fmt: skip


def ok(result: Any) -> Any:
    """A command that succeeded: its output, parsed when it is JSON."""
    assert result.code == 0, result.err
    return json.loads(result.out) if result.out.strip().startswith(("{", "[")) else result.out


def refused(result: Any, *words: str, code: int | None = None) -> str:
    """A command refused with one line on stderr ("barid: ..."), no traceback, naming
    every one of `words`; exit status `code` (any but 0 when None). Returns the line."""
    if code is None:
        assert result.code != 0
    else:
        assert result.code == code, (result.code, result.out, result.err)
    line = str(result.err).strip()
    assert line.startswith("barid: ") and "\n" not in line, result.err
    assert "Traceback" not in result.err
    for word in words:
        assert word in line, line
    return line

"""The `barid` command in-process, for tests: an environment of its own (every other
BARID_* variable removed), stdin given, stdout/stderr and the exit code captured."""

from __future__ import annotations

import contextlib
import io
import os
import sys
from dataclasses import dataclass

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

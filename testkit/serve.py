"""A `barid serve` process for crash tests: start on free ports, SIGKILL, stop.

The submission port is always free and waited for; `imap_port` (0: none) is
waited for too when given. Standard error goes to a pipe (read when start-up
fails) or, with `log`, to that file, which a long run cannot fill up."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from testkit.ports import free_port


class Server:
    def __init__(self, data: Path, env: dict[str, str] | None = None, *, imap_port: int = 0,
                 log: Path | None = None, start_timeout: float = 30) -> None:  # fmt: skip
        self.data = data
        self.extra_env = env or {}
        self.port = free_port()
        self.imap_port = imap_port
        self.log = log
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.launch()
        self.wait_ready()

    def launch(self) -> None:
        """Start the process without waiting for it (several start in parallel)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("BARID_")}
        env |= {"BARID_CONFIG": str(self.data / "barid.toml"),
                "BARID_SMTP__SUBMISSION_PORT": str(self.port), "BARID_SMTP__SMTPS_PORT": "0", "BARID_SMTP__TRANSFER_PORT": "0",
                "BARID_IMAP__PORT": str(self.imap_port), "BARID_IMAP__IMAPS_PORT": "0",
                "BARID_HTTP__PORT": "0", "BARID_HTTP__ADMIN_PORT": "0", "BARID_SMTP__MIN_FREE_DISK_MB": "0",
                "BARID_SERVER__LOG_LEVEL": "warning",
                "BARID_ALLOW_ROOT": "1"} | self.extra_env  # CI runs as root  # fmt: skip
        errors = self.log.open("ab") if self.log else subprocess.PIPE
        try:
            self.proc = subprocess.Popen([sys.executable, "-m", "admin", "serve"], env=env,
                                         stdout=subprocess.DEVNULL, stderr=errors)  # fmt: skip
        finally:
            if self.log:
                errors.close()  # type: ignore[union-attr]

    def wait_ready(self) -> None:
        """Until the submission port (and the IMAP port, if any) answers."""
        for port in (self.port, self.imap_port):
            if port:
                self._wait_for(port)

    def _wait_for(self, port: int) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                if self.log:
                    raise AssertionError(self.log.read_text(errors="replace")[-4000:])
                raise AssertionError(self.proc.stderr.read().decode() if self.proc.stderr else "")
            try:
                with socket.create_connection(("127.0.0.1", port), 0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("server did not start")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        if self.proc.stderr:
            self.proc.stderr.close()

    def rss_kib(self) -> int:
        """The process's resident set (VmRSS of /proc/<pid>/status), in KiB."""
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.communicate(timeout=30)

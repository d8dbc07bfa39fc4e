"""A real HAProxy for tests and benchmarks: Debian's `/usr/sbin/haproxy` in TCP
mode on free loopback ports, in front of gateway nodes.

`haproxy_server(services)` (a context manager) writes a configuration into a
temporary directory and runs `haproxy -db` (foreground) with it:

- one frontend per service (e.g. "smtp", "imap") on a free port of `bind_host`,
  and one backend with the given servers, balanced round-robin;
- every backend connection starts with a PROXY protocol v2 header
  (`send-proxy-v2`) and leaves from `source` (127.0.0.3 by default), so a node
  that trusts exactly that address (`[server] trusted_proxies`) parses it, and a
  connection from anywhere else is never taken for the balancer's;
- health checks every `check_ms` (a TCP connect that sends a PROXY v2 LOCAL
  header, `check-send-proxy`), a server out after one failure and back after
  one success, and `option redispatch` with retries, so a killed node's share
  goes to the others at once;
- start-up waits at most `START_TIMEOUT` seconds for every frontend port; the
  process is stopped (SIGTERM, then SIGKILL) and the directory removed at the
  end, whatever happened.

`find_haproxy()` returns the binary's path or None: the caller decides to skip
(tests use conftest's `need_tool("haproxy")`, which also fails under
BARID_REQUIRE_ALL=1).
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from testkit.ports import free_port

START_TIMEOUT = 15.0
SOURCE = "127.0.0.3"  # where the balancer's connections to the nodes come from

Address = tuple[str, int]


def find_haproxy() -> str | None:
    """The haproxy binary (on PATH or in /usr/sbin), or None."""
    return shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin:/sbin")


def render_config(frontends: Mapping[str, Address], backends: Mapping[str, Sequence[Address]],
                  source: str = SOURCE, check_ms: int = 200) -> str:  # fmt: skip
    """The haproxy.cfg text: one TCP frontend and backend per service (pure)."""
    lines = [
        "global", "    maxconn 4096", "",
        "defaults", "    mode tcp", "    timeout connect 2s", "    timeout client 60s",
        "    timeout server 60s", "    timeout check 1s", "    retries 3", "    option redispatch",
        "",
    ]  # fmt: skip
    for name, (host, port) in frontends.items():
        lines += [f"frontend {name}", f"    bind {host}:{port}", f"    default_backend {name}_nodes",
                  "", f"backend {name}_nodes", "    balance roundrobin", f"    source {source}",
                  f"    default-server send-proxy-v2 check check-send-proxy inter {check_ms}ms"
                  " fall 1 rise 1"]  # fmt: skip
        for index, (server_host, server_port) in enumerate(backends[name]):
            lines.append(f"    server node{index} {server_host}:{server_port}")
        lines.append("")
    return "\n".join(lines)


@dataclass
class HAProxy:
    """A running haproxy: `ports[service]` is the port clients dial."""

    binary: str
    directory: Path
    ports: dict[str, int]
    host: str
    proc: subprocess.Popen[bytes] | None = field(default=None)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def config(self) -> Path:
        return self.directory / "haproxy.cfg"

    @property
    def log(self) -> Path:
        return self.directory / "haproxy.log"

    def start(self) -> None:
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen([self.binary, "-db", "-f", str(self.config)],
                                         stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
        deadline = time.monotonic() + START_TIMEOUT
        waiting = set(self.ports.values())
        while waiting:
            if self.proc.poll() is not None:
                raise AssertionError(f"haproxy exited: {self.log_text()[-2000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"haproxy did not listen in {START_TIMEOUT}s")
            for port in list(waiting):
                try:
                    with socket.create_connection((self.host, port), 0.2):
                        waiting.discard(port)
                except OSError:
                    time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""


@contextmanager
def haproxy_server(backends: Mapping[str, Sequence[Address]], binary: str | None = None,
                   host: str = "127.0.0.1", source: str = SOURCE,
                   check_ms: int = 200) -> Iterator[HAProxy]:  # fmt: skip
    """A started haproxy in front of `backends` ({service: [(host, port), ...]})."""
    found = binary or find_haproxy()
    if found is None:
        raise AssertionError("haproxy is not installed")
    directory = Path(tempfile.mkdtemp(prefix="bhap", dir="/tmp"))
    ports = {name: free_port(host) for name in backends}
    proxy = HAProxy(found, directory, ports, host)
    try:
        proxy.config.write_text(render_config({n: (host, p) for n, p in ports.items()},
                                              backends, source, check_ms))  # fmt: skip
        proxy.start()
        yield proxy
    finally:
        proxy.stop()
        shutil.rmtree(directory, ignore_errors=True)

"""Gateway clusters for tests and benchmarks: several `barid serve` nodes, each
with its own data dir and free ports, all on one PostgreSQL database, behind a
real HAProxy (testkit/haproxy.py) that speaks PROXY protocol v2 to them.

- `make_first_node(path, database_url)`: `barid demo --no-serve` on that
  database (the demo government, its keys, TLS and credentials), then the
  node's settings written into its barid.toml (`configure_node`);
- `make_second_node(first, path, node_id, database_url)`: a further node of
  the same gateway, made as an operator would: `barid cluster export-keys` on
  the first node, `barid init --join` for the new one (keys, TLS, policy and
  settings from the bundle, its own node id); the data dir of a node holds
  nothing else (mail, blobs and counters are in the database);
- `Node`: one `barid serve` process (testkit/serve.py `Server`) on free SMTP
  submission and IMAP ports, trusting the balancer's source address; start
  (waits until both ports answer), SIGKILL, restart, stop;
- `Cluster`: the nodes and the balancer in front of their submission and IMAP
  ports; `cluster(...)` (a context manager) starts all and always stops all.

The suite's PostgreSQL runs with fsync off, so nodes are told
`allow_unsafe_durability` (never in production).
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from testkit.cli import run_cli
from testkit.gateway import clean_env
from testkit.haproxy import SOURCE, HAProxy, haproxy_server
from testkit.ports import free_port
from testkit.serve import Server

_KEY = re.compile(r"^(\w+)\s*=")
START_TIMEOUT = 90.0  # seconds for a node to answer on its ports
JOIN_PASSPHRASE = "cluster test passphrase"  # protects the key bundle between the two steps


def configure_node(data: Path, values: Mapping[tuple[str, str], str]) -> None:
    """Set `[section] key = value` lines (values are TOML literals) in a node's
    barid.toml, which lists every key (`barid init`/`demo` render them all)."""
    path = data / "barid.toml"
    section, left, out = "", dict(values), []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("["):
            section = line.strip().strip("[]")
        match = _KEY.match(line)
        if match and (section, match.group(1)) in left:
            line = f"{match.group(1)} = {left.pop((section, match.group(1)))}"
        out.append(line)
    if left:
        raise AssertionError(f"keys not found in {path}: {sorted(left)}")
    path.write_text("\n".join(out) + "\n", encoding="utf-8")


def node_settings(database_url: str, node_id: str) -> dict[tuple[str, str], str]:
    """What every node of a test cluster has in its barid.toml."""
    return {
        ("database", "url"): f'"{database_url}"',
        ("database", "allow_unsafe_durability"): "true",  # the suite's PostgreSQL: fsync off
        ("server", "node_id"): f'"{node_id}"',
        ("server", "trusted_proxies"): f'["{SOURCE}"]',
    }


def make_first_node(data: Path, database_url: str, node_id: str = "node-a",
                    timeout: float = 180) -> None:  # fmt: skip
    """The demo government on `database_url` in `data` (a fresh directory)."""
    env = clean_env() | {"BARID_DATABASE__URL": database_url,
                         "BARID_DATABASE__ALLOW_UNSAFE_DURABILITY": "1"}  # fmt: skip
    subprocess.run([sys.executable, "-m", "admin", "demo", "--data-dir", str(data), "--no-serve"],
                   check=True, capture_output=True, timeout=timeout, env=env)  # fmt: skip
    configure_node(data, node_settings(database_url, node_id))


def make_second_node(first: Path, data: Path, node_id: str, database_url: str) -> None:
    """A further node of the gateway whose first node is `first`, by the documented
    join procedure (docs/SCALING.md): `barid cluster export-keys` on the first
    node, `barid init --join` into `data` (the passphrase on stdin both times);
    then the test settings every node has (`node_settings`)."""
    bundle = data.parent / f".{data.name}.keys"
    try:
        run_cli(first, "cluster", "export-keys", str(bundle), stdin=JOIN_PASSPHRASE + "\n")
        run_cli(None, "init", "--join", str(bundle), "--database-url", database_url,
                "--data-dir", str(data), "--node-id", node_id,
                stdin=JOIN_PASSPHRASE + "\n")  # fmt: skip
    finally:
        bundle.unlink(missing_ok=True)
    configure_node(data, node_settings(database_url, node_id))


class Node(Server):
    """One `barid serve` of a cluster: free submission and IMAP ports, log in its data dir."""

    def __init__(self, data: Path, env: dict[str, str] | None = None) -> None:
        # A node starting while the others and PostgreSQL are busy may take a while.
        super().__init__(data, env, imap_port=free_port(), log=data / "serve.log",
                         start_timeout=START_TIMEOUT)  # fmt: skip

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def restart(self) -> None:
        """After a kill: the same data dir and ports."""
        self.start()


@dataclass
class Cluster:
    nodes: list[Node]
    proxy: HAProxy

    @property
    def smtp_port(self) -> int:
        return self.proxy.ports["smtp"]

    @property
    def imap_port(self) -> int:
        return self.proxy.ports["imap"]


@contextmanager
def cluster(datas: Sequence[Path], env: dict[str, str] | None = None) -> Iterator[Cluster]:
    """Nodes on `datas` started, HAProxy in front of them; everything stopped at the end."""
    nodes = [Node(data, env) for data in datas]
    with ExitStack() as stack:
        for node in nodes:
            stack.callback(node.stop)
            node.launch()
        for node in nodes:
            node.wait_ready()
        backends = {"smtp": [("127.0.0.1", n.port) for n in nodes],
                    "imap": [("127.0.0.1", n.imap_port) for n in nodes]}  # fmt: skip
        proxy = stack.enter_context(haproxy_server(backends))
        yield Cluster(nodes, proxy)

"""The cluster-wide configuration (policy, peers, mail servers) is equal on every node:
a node whose copy differs refuses to start, naming the part; `barid cluster
adopt-config` makes a deliberate change the cluster's."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path

from gateway.config import load_settings
from gateway.serve import services
from gateway.serve.sockets import StartupError
from gateway.store.db import create_engine, session_factory
from keys.gateway_keys import load_gateway_keys
from testkit.cli import ok
from testkit.ports import free_port
from tests.cluster.conftest import Cluster, counts, serve
from tests.cluster.test_key_rotation import wait_up


def start_check(data: Path, pg_url: str) -> str:
    """The start-up check of `barid serve` in this process: its refusal, "" if none."""

    async def go() -> str:
        settings = load_settings(data / "barid.toml")
        settings = settings.model_copy(
            update={"database": settings.database.model_copy(update={"url": pg_url})}
        )
        engine = create_engine(pg_url)
        try:
            keys = load_gateway_keys(settings.keys_dir)
            await services.check_cluster(settings, session_factory(engine), keys)
        except StartupError as exc:
            return str(exc)
        finally:
            await engine.dispose()
        return ""

    return asyncio.run(go())


def test_differing_policy_or_peers_refuse_until_adopted(cluster: Cluster, tmp_path: Path) -> None:
    b = tmp_path / "b"
    ok(cluster.join(b, "node-b"))
    recorded = ok(cluster.a("--json", "cluster", "adopt-config"))
    assert set(recorded["digests"]) == {"policy", "peers", "mailservers"}
    # A deliberate change made on node B only: B refuses to start and writes nothing.
    with (b / "policies.yaml").open("a") as fh:
        fh.write("# tightened\n")
    before = counts(cluster.pg_url)
    line = start_check(b, cluster.pg_url)
    assert "policy" in line and "peers" not in line and "adopt-config" in line
    with (b / "barid.toml").open("a") as fh:
        fh.write('\n[peers.region]\ndomains = ["region.gov.example"]\n')
    line = start_check(b, cluster.pg_url)  # `barid serve`'s check, in this process
    assert "peers, policy" in line and line.startswith("this node's")
    assert counts(cluster.pg_url) == before
    # Adopted on purpose (audited): B starts, and A, not yet updated, refuses.
    adopted = ok(cluster.node(b)("--json", "cluster", "adopt-config"))
    assert adopted["previous"]["policy"] == recorded["digests"]["policy"]
    port = free_port()
    proc = serve(b, BARID_HTTP__PORT=str(port))
    try:
        wait_up(proc, port)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert "peers, policy" in start_check(cluster.first, cluster.pg_url)
    events = ok(cluster.a("--json", "audit", "log", "--action", "cluster.adopt-config"))
    assert len(events) == 2 and events[-1]["target"] == "peers,policy"
    assert json.dumps(events).count("node-b") >= 1
    assert cluster.a("audit", "verify").code == 0


def test_a_node_whose_files_lag_uses_the_shared_key_set(cluster: Cluster, tmp_path: Path) -> None:
    b = tmp_path / "b"
    ok(cluster.join(b, "node-b"))
    rotated = ok(cluster.a("--json", "keys", "rotate"))
    # B's files still hold the key of the bundle; its commands use the database's set.
    out = ok(cluster.node(b)("--json", "keys", "rotate"))
    assert out["retired"] == rotated["current"]

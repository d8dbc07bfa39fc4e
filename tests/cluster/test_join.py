"""Joining a cluster: the key bundle, `barid init --join`, the master-key check."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from keys.bundle import BundleError, open_bundle, seal_bundle
from testkit.cli import ok, refused
from tests.cluster.conftest import PASSPHRASE, Cluster, counts, serve, wipe_key_check


def test_bundle_round_trip_and_refusals() -> None:
    payload = {"format": 1, "files": {"a": "b"}}
    sealed = seal_bundle(payload, PASSPHRASE, log2_n=10)
    assert open_bundle(sealed, PASSPHRASE) == payload
    assert b"files" not in sealed
    for bad, data in [("wrong passphrase", sealed), ("truncated", sealed[:-5]),
                      ("flipped", sealed[:-1] + bytes([sealed[-1] ^ 1]))]:  # fmt: skip
        with pytest.raises(BundleError):
            open_bundle(data, PASSPHRASE + "x" if bad == "wrong passphrase" else PASSPHRASE)
    header = bytearray(sealed)
    header[16] = 11  # the scrypt cost is authenticated like the rest
    with pytest.raises(BundleError):
        open_bundle(bytes(header), PASSPHRASE)
    with pytest.raises(BundleError):
        seal_bundle(payload, "short")


def test_export_then_join_makes_an_equal_node(cluster: Cluster, tmp_path: Path) -> None:
    assert stat.S_IMODE(cluster.bundle.stat().st_mode) == 0o600
    b = tmp_path / "b"
    report = ok(cluster.join(b, "node-b"))
    assert "master key" not in report or "from the key bundle" in report
    for name in ("keys/master.key", "keys/signing-ed25519.pem", "keys/dkim-rsa.pem",
                 "tls/key.pem", "tls/cert.pem", "policies.yaml"):  # fmt: skip
        assert (b / name).read_bytes() == (cluster.first / name).read_bytes(), name
    assert stat.S_IMODE((b / "keys/master.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((b / "barid.toml").stat().st_mode) == 0o600
    config = (b / "barid.toml").read_text()
    assert 'node_id = "node-b"' in config and cluster.pg_url in config
    # Node B reads the shared trail with the shared key; A's export is in it.
    node_b = cluster.node(b)
    assert node_b("audit", "verify").code == 0
    events = ok(node_b("--json", "audit", "log", "--action", "cluster.export-keys"))
    assert len(events) == 1 and PASSPHRASE not in json.dumps(events)
    # A database without the check value (as after the upgrade) gets it back from
    # the first node that opens it.
    wipe_key_check(cluster.pg_url)
    assert counts(cluster.pg_url)["cluster_values"] == 0
    assert node_b("agency", "list").code == 0
    assert counts(cluster.pg_url)["cluster_values"] == 1
    # The passphrase may come from a file instead of stdin.
    phrase = tmp_path / "phrase"
    phrase.write_text(PASSPHRASE + "\n")
    c = tmp_path / "c"
    done = cluster.cli({})("init", "--join", str(cluster.bundle), "--database-url", cluster.pg_url,
                           "--data-dir", str(c), "--passphrase-file", str(phrase))  # fmt: skip
    ok(done)
    assert (c / "keys/master.key").read_bytes() == (b / "keys/master.key").read_bytes()


def test_join_refuses_a_bad_bundle_and_writes_nothing(cluster: Cluster, tmp_path: Path) -> None:
    data = cluster.bundle.read_bytes()
    before = counts(cluster.pg_url)
    target = tmp_path / "b"
    cases = {
        "wrong": (data, PASSPHRASE + "!"),
        "corrupt": (data[:40] + bytes([data[40] ^ 0xFF]) + data[41:], PASSPHRASE),
        "truncated": (data[: len(data) // 2], PASSPHRASE),
        "not a bundle": (b"PK\x03\x04" + data[4:], PASSPHRASE),
    }
    for case, (content, passphrase) in cases.items():
        cluster.bundle.write_bytes(content)
        line = refused(cluster.join(target, "node-b", passphrase), "key bundle", code=1)
        assert PASSPHRASE not in line, case
        assert not target.exists() and not list(tmp_path.glob(".b.*")), case
    assert counts(cluster.pg_url) == before


def test_a_node_with_another_master_key_refuses_and_writes_nothing(
    cluster: Cluster, tmp_path: Path
) -> None:
    before = counts(cluster.pg_url)
    stranger = tmp_path / "c"
    # A fresh `barid init` pointed at the shared database makes its own keys...
    node_c = cluster.node(stranger, BARID_DATABASE__URL=cluster.pg_url)
    refused(node_c("init", "--data-dir", str(stranger)), "master key does not match", code=1)
    # ...and neither its commands nor its gateway write anything.
    refused(node_c("agency", "list"), "barid init --join", code=1)
    proc = serve(stranger, BARID_DATABASE__URL=cluster.pg_url)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert "master key does not match the database's" in err.decode()
    assert counts(cluster.pg_url) == before
    assert cluster.a("audit", "verify").code == 0
    # A bundle from that stranger is refused by the cluster's database, too.
    rogue = tmp_path / "rogue.keys"
    assert node_c("cluster", "export-keys", str(rogue), stdin=PASSPHRASE).code == 1


def test_a_bundle_of_another_cluster_is_refused(cluster: Cluster, tmp_path: Path) -> None:
    other = tmp_path / "other"
    node_x = cluster.node(other)  # a gateway of its own (SQLite)
    assert node_x("init", "--data-dir", str(other)).code == 0
    foreign = tmp_path / "other.keys"
    ok(node_x("cluster", "export-keys", str(foreign), stdin=PASSPHRASE + "\n"))
    before = counts(cluster.pg_url)
    cluster.bundle = foreign
    refused(cluster.join(tmp_path / "b", "node-b"), "does not match the database's", code=1)
    assert not (tmp_path / "b").exists()
    assert counts(cluster.pg_url) == before

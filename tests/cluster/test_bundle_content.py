"""What the key bundle carries: a node laid out from it holds the same cluster-wide
configuration (equal digests, though every path differs) and the same blob store."""

from __future__ import annotations

import stat
from pathlib import Path

from admin.cluster_bundle import collect, lay_out
from gateway.config import load_settings
from gateway.config.cluster_digest import config_digests
from keys.gateway_keys import ensure_gateway_keys
from keys.tls import ensure_dev_certificate

SOURCE_TOML = """
[server]
data_dir = "."
hostname = "mail.gov.example"
trusted_proxies = ["10.0.0.0/8"]

[http]
public_url = "https://verify.gov.example"

[blobs]
backend = "filesystem"
path = "/srv/shared/blobs"
s3_credentials_file = "s3.creds"

[peers.region]
domains = ["region.gov.example"]
host = "transfer.region.gov.example"
tls_trust = "peers/region.pem"
classification_map = { restricted = "confidential" }

[mailservers.moh]
agencies = ["MOH"]
host = "imap.moh.gov.example"
password_file = "secrets/moh-imap"
"""


def test_a_node_laid_out_from_the_bundle_matches_its_source(tmp_path: Path) -> None:
    src = tmp_path / "a"
    (src / "peers").mkdir(parents=True)
    (src / "secrets").mkdir()
    (src / "barid.toml").write_text(SOURCE_TOML)
    (src / "peers/region.pem").write_text("-----BEGIN CERTIFICATE-----\nx\n")
    (src / "secrets/moh-imap").write_text("imap password\n")
    (src / "s3.creds").write_text("access_key = a\nsecret_key = b\n")
    (src / "policies.yaml").write_text("version: 1\ndefault: deny\nrules: []\n")
    ensure_gateway_keys(src / "keys")
    (src / "tls").mkdir(mode=0o700)
    ensure_dev_certificate(src / "tls/cert.pem", src / "tls/key.pem", "mail.gov.example")
    source = load_settings(src / "barid.toml")

    payload = collect(source, "node-a")
    dest = tmp_path / "nodes" / "b"
    written = lay_out(payload, dest, "postgresql+asyncpg://barid@db/barid", "node-b")
    assert "keys/master.key" in written and "remote/peers-region-tls_trust" in written
    joined = load_settings(dest / "barid.toml")

    assert config_digests(joined) == config_digests(source)
    assert joined.peers["region"].tls_trust != source.peers["region"].tls_trust
    assert joined.server.node_id == "node-b" and joined.server.hostname == "mail.gov.example"
    assert joined.database.url.startswith("postgresql+asyncpg://")
    assert joined.http.public_url == "https://verify.gov.example"
    assert [str(n) for n in joined.server.trusted_proxies] == ["10.0.0.0/8"]
    assert joined.blobs.backend == "filesystem" and joined.blobs_dir == Path("/srv/shared/blobs")
    assert Path(joined.blobs.s3_credentials_file).read_text() == "access_key = a\nsecret_key = b\n"
    assert (dest / "keys/master.key").read_bytes() == (src / "keys/master.key").read_bytes()
    for name in ("keys/master.key", "tls/key.pem", "remote/mailservers-moh-password_file"):
        assert stat.S_IMODE((dest / name).stat().st_mode) == 0o600, name
    assert stat.S_IMODE(dest.stat().st_mode) == 0o700

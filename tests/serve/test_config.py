"""Configuration: documented defaults, file, environment overrides, clear refusals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway.config import ConfigError, Settings, load_settings, render_toml

ROOT = Path(__file__).resolve().parents[2]


def test_shipped_file_documents_every_setting_with_its_default() -> None:
    assert (ROOT / "config" / "barid.toml").read_text(encoding="utf-8") == render_toml()
    loaded = load_settings(ROOT / "config" / "barid.toml", environ={})
    defaults = Settings()
    assert loaded.smtp == defaults.smtp and loaded.imap == defaults.imap
    for section in Settings.model_fields:
        if section in ("peers", "mailservers"):
            continue
        for key in type(getattr(defaults, section)).model_fields:
            assert f"\n{key} = " in render_toml(), f"{section}.{key} undocumented"


def test_design_keys_exist_with_development_ports() -> None:
    s = load_settings(None, environ={})
    assert (s.smtp.submission_port, s.smtp.smtps_port, s.smtp.transfer_port) == (5870, 4650, 2525)
    assert (s.imap.port, s.imap.imaps_port, s.http.port) == (1430, 9930, 8080)
    for name in ["data_dir", "hostname"]:
        assert hasattr(s.server, name)
    for section, key in [("database", "url"), ("smtp", "max_message_size"), ("http", "public_url"),
                         ("tls", "cert"), ("tls", "key"), ("policy", "file")]:  # fmt: skip
        assert hasattr(getattr(s, section), key)


def test_environment_overrides_file(tmp_path: Path) -> None:
    cfg = tmp_path / "b.toml"
    cfg.write_text('[smtp]\nsubmission_port = 2000\n[server]\ndata_dir = "d"\n')
    s = load_settings(cfg, environ={"BARID_SMTP__SUBMISSION_PORT": "15870"})
    assert s.smtp.submission_port == 15870
    assert s.data_dir == (tmp_path / "d").resolve()  # relative to the file
    assert load_settings(None, environ={"BARID_CONFIG": str(cfg)}).smtp.submission_port == 2000


@pytest.mark.parametrize(
    ("text", "env", "named"),
    [
        ("[smtp]\nsubmision_port = 1\n", {}, "smtp.submision_port"),
        ("[smpt]\nport = 1\n", {}, "smpt"),
        ('[smtp]\nsubmission_port = "x"\n', {}, "smtp.submission_port"),
        ("[smtp]\nsubmission_port = 70000\n", {}, "smtp.submission_port"),
        ("[smtp]\nmax_message_size = 5\n", {}, "smtp.max_message_size"),
        ('[http]\npublic_url = "ftp://x"\n', {}, "http.public_url"),
        ('[database]\nurl = "mysql://x"\n', {}, "database.url"),
        ("", {"BARID_SMTP__SUBMISSION_PORT": "abc"}, "BARID_SMTP__SUBMISSION_PORT"),
        ("", {"BARID_SMTP__NOPE": "1"}, "smtp.nope"),
        ("", {"BARID_NOPE__X": "1"}, "BARID_NOPE__X"),
        ("[smtp\n", {}, "not valid TOML"),
        (
            '[alerts]\nsecurity_mailboxes = "MOH security@moh.gov.example"\n',
            {},
            "alerts.security_mailboxes",
        ),
        ('[alerts]\nsecurity_mailboxes = "MOH=security"\n', {}, "alerts.security_mailboxes"),
        (
            '[alerts]\nsecurity_mailboxes = "MOH=a@moh.gov.example;MOH=b@moh.gov.example"\n',
            {},
            "alerts.security_mailboxes",
        ),
        (
            "",
            {"BARID_ALERTS__DEFAULT_SECURITY_MAILBOX": "nobody"},
            "alerts.default_security_mailbox",
        ),
    ],
)
def test_bad_settings_name_the_key(
    tmp_path: Path, text: str, env: dict[str, str], named: str
) -> None:
    cfg = tmp_path / "b.toml"
    cfg.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_settings(cfg, environ=env)
    assert named in str(err.value)


def test_cli_exits_2_naming_the_key(tmp_path: Path, make_cli: Any) -> None:
    cfg = tmp_path / "b.toml"
    cfg.write_text("[smtp]\nsubmission_port = -1\n")
    result = make_cli({})("agency", "list", "--config", str(cfg))
    assert result.code == 2
    assert "smtp.submission_port" in result.err and result.err.count("\n") == 1


def test_peer_and_mail_server_tables(tmp_path: Path) -> None:
    cfg = tmp_path / "b.toml"
    cfg.write_text(
        '[peers.region]\ndomains = ["Region.Gov.Example."]\nhost = "127.0.0.1"\n'
        'tls_trust = "peers/region.pem"\ndkim_keys = "peers/region-dkim.txt"\n'
        'tls_fingerprints = ["AB:' + ":".join(["cd"] * 31) + '"]\n'
        'classification_map = { Restricted = "Confidential" }\n'
        '[mailservers.moh]\nagencies = ["moh"]\nhost = "imap.moh"\n'
        'password_file = "secrets/moh"\nlogin = "{address}*barid"\n'
    )
    s = load_settings(cfg, environ={"BARID_DELIVERY__RETRY_FIRST_SECONDS": "0.5"})
    peer = s.peers["region"]
    assert peer.domains == ["region.gov.example"] and peer.port == 2525
    assert peer.tls_trust == str(tmp_path / "peers" / "region.pem")
    assert peer.dkim_keys == str(tmp_path / "peers" / "region-dkim.txt")
    assert peer.tls_fingerprints == ["ab" + "cd" * 31]
    assert peer.transfer_ready and peer.dkim_domains == ["region.gov.example"]
    assert peer.local_classification("RESTRICTED") == "confidential"
    assert peer.local_classification("secret") == "secret"
    assert peer.local_classification("cosmic") is None
    assert s.agency_mailservers == {"MOH": "moh"}
    assert s.mailservers["moh"].password_file == str(tmp_path / "secrets" / "moh")
    assert s.delivery.retry_first_seconds == 0.5 and s.delivery.retry_window_hours == 24.0


@pytest.mark.parametrize(
    "table",
    [
        '[peers.x]\ndomains = ["a.example"]\nclassification_map = { a = "cosmic" }\n',
        '[peers.x]\ndomains = ["a.example"]\ntls_fingerprints = ["abc"]\n',
        '[peers."bad name"]\ndomains = ["a.example"]\n',
        '[mailservers.m]\nagencies = ["A"]\nhost = "h"\npassword_file = "p"\nlogin = "x"\n',
        '[mailservers.m]\nagencies = ["A"]\nhost = "h"\npassword_file = "p"\ntls = "none"\n',
    ],
)
def test_bad_peer_or_mail_server_is_refused(tmp_path: Path, table: str) -> None:
    cfg = tmp_path / "b.toml"
    cfg.write_text(table)
    with pytest.raises(ConfigError):
        load_settings(cfg, environ={})

"""The documented configuration file: every setting with its doc line and default.

Owns: `render_toml` (`config/barid.toml` is its output with no overrides; `barid
init` writes it with the data directory filled in). Must not: write the file.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.config.settings import SECTIONS


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_toml(overrides: Mapping[str, Mapping[str, Any]] | None = None) -> str:
    """The documented configuration file: every setting, its doc line and default.

    `config/barid.toml` is this with no overrides (a test keeps them equal);
    `barid init` writes it with the data directory filled in.
    """
    overrides = overrides or {}
    lines = [
        "# Barid configuration. Every key is shown with its default.",
        "# Any key can be overridden from the environment as BARID_<SECTION>__<KEY>,",
        "# e.g. BARID_SMTP__SUBMISSION_PORT=15870. Relative paths are relative to this file.",
    ]
    for section, model in SECTIONS.items():
        lines += ["", f"[{section}]"]
        for key, info in model.model_fields.items():
            value = overrides.get(section, {}).get(key, info.default)
            lines.append(f"# {info.description}")
            lines.append(f"{key} = {_toml_value(value)}")
    lines += [
        "",
        "# Federation peers: one table per peer gateway (file only, no environment override).",
        "# [peers.region]",
        '# domains = ["region.gov.example"]',
        '# host = "transfer.region.gov.example"   # its transfer listener',
        "# port = 2525",
        '# tls_trust = "peers/region.pem"          # its certificate (pinned) or its CA, PEM',
        "# tls_fingerprints = []                   # optional SHA-256 pins (then only these)",
        '# tls_server_name = ""                    # checked in a CA-issued certificate',
        '# dkim_domain = ""                        # d= of its signatures; default: domains',
        '# dkim_keys = "peers/region-dkim.txt"     # its `barid dkim dns` output; empty: DNS',
        '# classification_map = { restricted = "confidential" }   # its label -> ours',
        "",
        "# Agencies with their own IMAP server (copies are appended there; file only).",
        "# [mailservers.moh]",
        '# agencies = ["MOH"]',
        '# host = "imap.moh.gov.example"',
        "# port = 993",
        '# tls = "implicit"                        # or "starttls"; never plaintext',
        '# tls_ca = ""                             # PEM trust anchors; empty: the system\'s',
        '# login = "{address}*barid"               # e.g. a Dovecot master user',
        '# password_file = "secrets/moh-imap"      # the password, alone in a 0600 file',
        '# folder = "INBOX"',
    ]
    for name, peer in overrides.get("peers", {}).items():
        lines += [
            "",
            f"[peers.{name}]",
            f"domains = [{', '.join(_toml_value(d) for d in peer['domains'])}]",
        ]
    return "\n".join(lines) + "\n"


def _inline(value: Any) -> str:
    if isinstance(value, dict):
        inner = ", ".join(f"{_toml_value(str(k))} = {_inline(v)}" for k, v in value.items())
        return "{ " + inner + " }" if inner else "{}"
    return _toml_value(value)


def render_tables(kind: str, tables: Mapping[str, Mapping[str, Any]]) -> str:
    """Named tables (`[peers.<name>]`, `[mailservers.<name>]`) with every given key,
    for a configuration file `barid init --join` writes."""
    lines: list[str] = []
    for name, table in tables.items():
        lines += ["", f"[{kind}.{name}]"]
        lines += [f"{key} = {_inline(value)}" for key, value in table.items()]
    return "\n".join(lines) + ("\n" if lines else "")

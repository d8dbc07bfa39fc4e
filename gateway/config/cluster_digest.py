"""Digests of the configuration parts every node of a cluster must hold equal.

Owns: which parts those are (the routing policy file, the [peers] and
[mailservers] tables) and their SHA-256 digests. A table's digest covers its
settings with each file it names replaced by that file's content digest, so two
nodes whose copies live at different paths still agree. Must not: write
anything (gateway.store.cluster_state records and compares the digests).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from gateway.config.settings import Settings

PARTS = ("policy", "peers", "mailservers")
# Settings of a peer or mail server that name a file (its content is what counts).
FILE_FIELDS = {"peers": ("tls_trust", "dkim_keys"), "mailservers": ("tls_ca", "password_file")}


def file_digest(path: str | Path) -> str:
    """SHA-256 of a file's bytes, "" for no file, "missing" when it cannot be read."""
    if not str(path):
        return ""
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return "missing"


def _tables(kind: str, tables: dict[str, Any]) -> str:
    canonical: dict[str, Any] = {}
    for name, table in tables.items():
        values = table.model_dump(mode="json")
        for field in FILE_FIELDS[kind]:
            values[field] = file_digest(values[field])
        canonical[name] = values
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def config_digests(settings: Settings) -> dict[str, str]:
    """Part name -> SHA-256 hex, for every part of PARTS."""
    return {
        "policy": file_digest(settings.policy_file),
        "peers": _tables("peers", settings.peers),
        "mailservers": _tables("mailservers", settings.mailservers),
    }

"""What a new node of a cluster receives from an existing one, and how it is laid out.

Owns: `collect` (the payload of `barid cluster export-keys`: every file of the
key directory, the TLS certificate and key, the routing policy, the [peers] and
[mailservers] tables with the files they name, and the few settings that must be
equal: public URL, DKIM selector, host name, trusted proxies, the blob store
with its S3 credentials file) and `lay_out`
(the new node's data directory made from it, with its own barid.toml). Must not:
encrypt (keys.bundle does) or talk to the database.
"""

from __future__ import annotations

import base64
import datetime as dt
import os
import shutil
from pathlib import Path, PurePosixPath
from typing import Any

from gateway.config import Settings, render_toml
from gateway.config.cluster_digest import FILE_FIELDS
from gateway.config.render import render_tables
from keys.bundle import FORMAT_VERSION, BundleError
from keys.key_files import PRIVATE_DIR_MODE, PRIVATE_FILE_MODE, fsync_dir, write_new_file

CONFIG_NAME = "barid.toml"
# Settings copied from the exporting node: a node that differs would issue
# different verification links or DKIM selectors, or mistrust the load balancer.
SHARED_SETTINGS = {
    "http": ("public_url",),
    "keys": ("dkim_selector",),
    "server": ("hostname", "trusted_proxies"),
    # Where every node finds the blobs the others wrote (docs/SCALING.md).
    "blobs": ("backend", "inline_max_bytes", "gc_grace_seconds", "gc_interval_seconds",
              "s3_endpoint", "s3_bucket", "s3_region", "s3_prefix"),
}  # fmt: skip
S3_CREDENTIALS = "remote/blobs-s3-credentials"
# Files (or folders of files) that may stay readable by others; every other file
# of the new node is written 0600, whatever its mode on the exporting node.
PUBLIC_FILES = frozenset({"tls/cert.pem", "keys/retired-signing"})


def _entry(path: Path) -> dict[str, Any]:
    return {
        "mode": path.stat().st_mode & 0o777,
        "data": base64.b64encode(path.read_bytes()).decode(),
    }


def _key_files(keys_dir: Path) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for path in sorted(keys_dir.rglob("*")):
        relative = path.relative_to(keys_dir)
        if path.is_file() and not any(part.startswith(".") for part in relative.parts):
            found[relative.as_posix()] = _entry(path)
    return found


def _remote(kind: str, tables: dict[str, Any], files: dict[str, Any]) -> dict[str, Any]:
    """The tables as plain values; each file they name travels as remote/<kind>-<name>-<field>."""
    out: dict[str, Any] = {}
    for name, table in tables.items():
        values = table.model_dump(mode="json")
        for field in FILE_FIELDS[kind]:
            if values[field]:
                relative = f"remote/{kind}-{name}-{field}"
                files[relative] = _entry(Path(values[field]))
                values[field] = relative
        out[name] = values
    return out


def collect(settings: Settings, source_node: str) -> dict[str, Any]:
    """The bundle's payload; OSError when a file cannot be read."""
    files: dict[str, Any] = {f"keys/{k}": v for k, v in _key_files(settings.keys_dir).items()}
    files["tls/cert.pem"] = _entry(settings.tls_cert)
    files["tls/key.pem"] = _entry(settings.tls_key)
    files["policies.yaml"] = _entry(settings.policy_file)
    shared = {
        section: {key: getattr(getattr(settings, section), key) for key in keys}
        for section, keys in SHARED_SETTINGS.items()
    }
    _blob_places(settings, shared, files)
    return {
        "format": FORMAT_VERSION,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "source_node": source_node,
        "settings": shared,
        "peers": _remote("peers", settings.peers, files),
        "mailservers": _remote("mailservers", settings.mailservers, files),
        "files": files,
    }


def _blob_places(settings: Settings, shared: dict[str, Any], files: dict[str, Any]) -> None:
    """The filesystem backend's directory (absolute: every node mounts it at the same
    path) and the S3 credentials file, when configured."""
    if settings.blobs.backend == "filesystem":
        shared["blobs"]["path"] = str(settings.blobs_dir)
    if settings.blobs.s3_credentials_file:
        files[S3_CREDENTIALS] = _entry(Path(settings.blobs.s3_credentials_file))
        shared["blobs"]["s3_credentials_file"] = S3_CREDENTIALS


def _checked_files(payload: dict[str, Any]) -> dict[PurePosixPath, tuple[int, bytes]]:
    """The payload's files, each path relative and inside the data directory."""
    out: dict[PurePosixPath, tuple[int, bytes]] = {}
    try:
        for name, entry in payload["files"].items():
            path = PurePosixPath(name)
            if path.is_absolute() or ".." in path.parts or not path.parts:
                raise BundleError(f"key bundle names an unsafe path {name!r}")
            out[path] = (int(entry["mode"]) & 0o644, base64.b64decode(entry["data"], validate=True))
        if "keys/master.key" not in {p.as_posix() for p in out}:
            raise BundleError("key bundle holds no master key")
    except (KeyError, TypeError, ValueError, AttributeError):
        raise BundleError("key bundle content is not valid") from None
    return out


def master_key_file(payload: dict[str, Any]) -> bytes:
    """The bytes of keys/master.key in the payload (BundleError when absent)."""
    return _checked_files(payload)[PurePosixPath("keys/master.key")][1]


def _config_text(payload: dict[str, Any], database_url: str, node_id: str) -> str:
    overrides: dict[str, dict[str, Any]] = {
        section: dict(values) for section, values in payload["settings"].items()
    }
    overrides.setdefault("server", {}).update({"data_dir": ".", "node_id": node_id})
    overrides["database"] = {"url": database_url}
    return (
        render_toml(overrides)
        + render_tables("peers", payload["peers"])
        + render_tables("mailservers", payload["mailservers"])
    )


def lay_out(payload: dict[str, Any], data_dir: Path, database_url: str, node_id: str) -> list[str]:
    """Make `data_dir` (absent or empty) from the payload; returns the paths written.

    Everything is written in a private sibling directory first and renamed into
    place at the end, so a failure leaves no half-made data directory.
    """
    files = _checked_files(payload)
    try:
        config = _config_text(payload, database_url, node_id)
    except (KeyError, TypeError, AttributeError, ValueError):
        raise BundleError("key bundle content is not valid") from None
    staging = data_dir.with_name(f".{data_dir.name}.joining")
    shutil.rmtree(staging, ignore_errors=True)
    staging.parent.mkdir(parents=True, exist_ok=True)
    staging.mkdir(mode=PRIVATE_DIR_MODE)
    try:
        written = [CONFIG_NAME]
        write_new_file(staging / CONFIG_NAME, config.encode("utf-8"), PRIVATE_FILE_MODE)
        for path, (mode, data) in sorted(files.items()):
            target = staging.joinpath(*path.parts)
            for parent in reversed(target.relative_to(staging).parents[:-1]):
                (staging / parent).mkdir(mode=PRIVATE_DIR_MODE, exist_ok=True)
            public = path.as_posix() in PUBLIC_FILES or path.parent.as_posix() in PUBLIC_FILES
            write_new_file(target, data, mode if public and mode & 0o044 else PRIVATE_FILE_MODE)
            written.append(path.as_posix())
        if data_dir.exists():
            data_dir.rmdir()  # empty, checked by the caller
        os.rename(staging, data_dir)
        fsync_dir(data_dir.parent)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return written

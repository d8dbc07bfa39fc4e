"""The `[blobs]` section: where the ciphertext of documents lives, and its collector.

Owns: the backend choice, its location and credentials' sources, the inline
threshold, the garbage collector's grace and interval, and `check_message_size`
(the cap of `smtp.max_message_size` for the chosen store). Must not: read files
or the environment (gateway.store.blobstore reads the credentials at start).
"""

from __future__ import annotations

from typing import Literal

from gateway.config.sections import Section, _f

MiB = 1024 * 1024
# Largest value one database row should hold: PostgreSQL's bytea stops at 1 GB, and
# a value is built in memory several times over (driver, WAL, TOAST); a quarter of
# the hard limit keeps one message from stalling a node or its replicas.
DATABASE_MAX_BLOB_BYTES = 256 * MiB
# One S3 PUT holds 5 GiB and files hold more; the gateway itself holds a message in
# memory, so the external stores are capped by smtp.max_message_size's own limit (1 GiB).


class BlobsSettings(Section):
    backend: Literal["database", "filesystem", "s3"] = _f(
        "database",
        "Where large blobs' ciphertext lives: database (single node), filesystem or s3.",
    )
    path: str = _f("", "Directory of the filesystem backend (default: <data_dir>/blobs).")
    inline_max_bytes: int = _f(
        64 * 1024,
        "Blobs whose ciphertext is at most this stay in the database with any backend.",
        ge=0,
        le=DATABASE_MAX_BLOB_BYTES,
    )
    gc_grace_seconds: int = _f(
        3600, "Objects no row references are removed once older than this.", ge=1
    )
    gc_interval_seconds: int = _f(
        900, "How often `barid serve` runs the collector (0: never).", ge=0
    )
    s3_endpoint: str = _f("", "S3-compatible endpoint URL, e.g. https://s3.example.gov.")
    s3_bucket: str = _f("barid-blobs", "Bucket of the s3 backend.")
    s3_region: str = _f("us-east-1", "Region named in request signatures.")
    s3_prefix: str = _f("", "Key prefix inside the bucket (e.g. 'node-a/'; empty: none).")
    s3_credentials_file: str = _f(
        "",
        "File with 'access_key = ...' and 'secret_key = ...' lines (default: the"
        " BARID_S3_ACCESS_KEY and BARID_S3_SECRET_KEY environment variables).",
    )


def check_message_size(blobs: BlobsSettings, max_message_size: int) -> None:
    """ValueError when one message cannot fit the store that would hold it."""
    if blobs.backend == "database" and max_message_size > DATABASE_MAX_BLOB_BYTES:
        raise ValueError(
            f"smtp.max_message_size {max_message_size} is over {DATABASE_MAX_BLOB_BYTES}"
            " (256 MiB), the most one database row should hold with [blobs] backend ="
            ' "database"; lower it or choose the "filesystem" or "s3" backend'
        )

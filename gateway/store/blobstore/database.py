"""The database backend: ciphertext stays in the `blobs` row (`location` NULL).

Owns: the facts of that backend (its size cap). Must not: do I/O: the row's
ciphertext is written by the same commit as the rows referring to it, which is
its fsync (see gateway.store.blobs), so this backend has no separate put/get.

It is the default (one node, backups of the database are complete) and what
`barid blobs migrate --to database` moves objects back into.
"""

from __future__ import annotations

from gateway.config.blobs import DATABASE_MAX_BLOB_BYTES

SCHEME = "db"
MAX_OBJECT_BYTES = DATABASE_MAX_BLOB_BYTES

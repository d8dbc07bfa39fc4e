"""The `Idempotency-Key` request header (draft-ietf-httpapi-idempotency-key-header).

Owns: reading and checking the header (1 to 128 printable ASCII characters; the
structured-field form in double quotes is accepted too) and the fingerprint of
a request that a key is remembered with. Must not: remember keys itself (the job
registry and the token service do, each for its own use case).

Failure behaviour: a malformed key is refused as 422 problem details before
anything is done; the key's text is never echoed in the answer.
"""

from __future__ import annotations

import hashlib
from typing import Annotated

from fastapi import Header

from admin.api.problems import ApiProblem

MAX_KEY = 128
HEADER = "Idempotency-Key"
DESCRIPTION = (
    "Makes a retry of this request safe: 1 to 128 printable ASCII characters"
    " (a UUID is a good choice), unique per request; see the operation for what a"
    " retry with the same key answers."
)


def idempotency_key(
    key: Annotated[
        str | None, Header(alias=HEADER, max_length=MAX_KEY + 2, description=DESCRIPTION)
    ] = None,
) -> str | None:
    """The checked key of the request, or None without the header."""
    if key is None:
        return None
    value = key[1:-1] if len(key) >= 2 and key[0] == key[-1] == '"' else key
    if not 1 <= len(value) <= MAX_KEY or not all(" " <= char <= "~" for char in value):
        message = f"{HEADER}: 1 to {MAX_KEY} printable ASCII characters"
        raise ApiProblem(422, "Unprocessable Content", message, kind="invalid-input",
                         errors=[{"field": f"header.{HEADER}", "message": message}])  # fmt: skip
    return value


def fingerprint(*parts: bytes) -> str:
    """SHA-256 over the parts of a request (length-prefixed, so no two splits collide)."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()

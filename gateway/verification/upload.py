"""Reading an uploaded document for a check: its SHA-256, never the whole file.

Owns: hashing a `multipart/form-data` upload's `file` field in chunks while the
whole body is counted against a limit (Starlette spools the file part to disk
past 1 MiB), and reading small text fields of the same form. Must not: answer
the request; the JSON API and the HTML page each turn the result into their
own reply.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.types import Message

READ_CHUNK = 64 * 1024


class UploadProblem(enum.StrEnum):
    TOO_LARGE = "too_large"  # the body passed the limit
    MALFORMED = "malformed"  # not a readable multipart body


@dataclass(frozen=True, slots=True)
class FormUpload:
    sha256: str | None  # None: no `file` field (see `has_file`) or an empty file
    has_file: bool
    fields: dict[str, str]  # the requested text fields that were present


class _TooLarge(Exception):
    pass


async def multipart_upload(
    request: Request, limit: int, *, text_fields: Iterable[str] = ()
) -> FormUpload | UploadProblem:
    """The SHA-256 (hex) of the form's `file` and the wanted text fields."""
    received = 0

    async def counted() -> Message:
        nonlocal received
        message = await request.receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise _TooLarge
        return message

    limited = Request(request.scope, counted)
    try:
        async with limited.form(max_files=1, max_fields=8) as form:
            fields = {
                name: value for name in text_fields if isinstance(value := form.get(name), str)
            }
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                return FormUpload(None, False, fields)
            digest = hashlib.sha256()
            size = 0
            while chunk := await upload.read(READ_CHUNK):
                size += len(chunk)
                digest.update(chunk)
    except _TooLarge:
        return UploadProblem.TOO_LARGE
    except (MultiPartException, HTTPException):
        return UploadProblem.MALFORMED
    return FormUpload(digest.hexdigest() if size else None, True, fields)

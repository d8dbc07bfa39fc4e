"""The child process of gateway.delivery.pool: applies one pure function of bytes.

Run as `python -m gateway.delivery.parse_worker MODULE:FUNCTION`. Protocol on
stdin/stdout, one request at a time: the parent writes a 4-byte big-endian
length and that many bytes; the child answers a 1-byte status (0 ok, 1 the
function raised) then a 4-byte length and the result (or the exception's class
name). The child ends at end of input. It imports nothing of the parent's
program, so any program may start it (unlike multiprocessing's spawn, which
re-imports the parent's main module).

Also owns the copy request format (`copy_request`, `split_copy_request`): a
delivered copy sent as its three parts, so that the child's function
(gateway.imap.describe_copy.describe_job) can parse the shared original once.
"""

from __future__ import annotations

import importlib
import struct
import sys
from collections.abc import Callable
from typing import BinaryIO

_LENGTH = struct.Struct(">I")
COPY_MAGIC = b"\x00barid-copy/1\x00"  # opens a copy request, never a mail of ours
_PARTS = struct.Struct(">II")


def copy_request(prefix: bytes, original: bytes, suffix: bytes) -> bytes:
    """One payload holding a copy's prefix, original and suffix."""
    return COPY_MAGIC + _PARTS.pack(len(prefix), len(original)) + prefix + original + suffix


def split_copy_request(payload: bytes) -> tuple[bytes, bytes, bytes] | None:
    """(prefix, original, suffix) of a `copy_request`; None for any other payload;
    ValueError for a cut one."""
    if not payload.startswith(COPY_MAGIC):
        return None
    at = len(COPY_MAGIC) + _PARTS.size
    if len(payload) < at:
        raise ValueError("truncated copy request")
    prefix_len, original_len = _PARTS.unpack_from(payload, len(COPY_MAGIC))
    middle = at + prefix_len
    if middle + original_len > len(payload):
        raise ValueError("truncated copy request")
    view = memoryview(payload)
    return (
        bytes(view[at:middle]),
        bytes(view[middle : middle + original_len]),
        bytes(view[middle + original_len :]),
    )


def load(spec: str) -> Callable[[bytes], bytes]:
    module, _, name = spec.partition(":")
    function: Callable[[bytes], bytes] = getattr(importlib.import_module(module), name)
    return function


def _read_exactly(stream: BinaryIO, size: int) -> bytes | None:
    data = stream.read(size)
    return data if data is not None and len(data) == size else None


def serve(function: Callable[[bytes], bytes], source: BinaryIO, sink: BinaryIO) -> None:
    while True:
        header = _read_exactly(source, _LENGTH.size)
        if header is None:
            return
        payload = _read_exactly(source, _LENGTH.unpack(header)[0])
        if payload is None:
            return
        try:
            result, status = function(payload), 0
        except Exception as exc:  # reported to the parent, which decides
            result, status = type(exc).__name__.encode("ascii", "replace"), 1
        sink.write(bytes([status]) + _LENGTH.pack(len(result)) + result)
        sink.flush()


def main() -> None:
    serve(load(sys.argv[1]), sys.stdin.buffer, sys.stdout.buffer)


if __name__ == "__main__":
    main()

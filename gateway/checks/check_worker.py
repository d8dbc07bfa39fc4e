"""The child process of gateway.checks.pool: runs the submission checks on its own core.

Run as `python -m gateway.checks.check_worker`. Protocol on stdin/stdout, one
request at a time, each frame a 4-byte big-endian length and a pickle (both
ends are this program, started by the parent; nothing else writes to the pipe):

  ("shared", version, SHARED)  the values every message shares (directory
                               snapshot, policy, federation, limits, OpenPGP
                               backend, mail servers), sent once per version;
                               no answer.
  ("check", version, FIELDS)   one message's own values (`MESSAGE_FIELDS`);
                               answered by a status byte (0 ok, 1 the checks
                               raised, 2 the shared values are not that
                               version) and a frame: the pickled
                               `(verdict, audit hits)` of
                               `check_submission`, an accepted submission
                               without its raw bytes (the parent has them),
                               or the exception's class name.

The child ends at end of input. It holds no database connection, no keys and
no event loop: it computes a verdict, never a side effect; the parent stores.
Anything printed goes to stderr, never into the answers.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import struct
import sys
from typing import Any, BinaryIO

from gateway.checks.facts import Inputs
from gateway.checks.submission import check_submission
from gateway.model.message import Submission

LENGTH = struct.Struct(">I")
SHARED_FIELDS = ("snapshot", "policy", "federation", "limits", "openpgp_backend", "mailservers")
MESSAGE_FIELDS = (
    "raw",
    "sender",
    "agency",
    "material",
    "recipients",
    "now",
    "sent_last_hour",
    "client_address",
)
OK, RAISED, STALE = 0, 1, 2


def frame(payload: bytes) -> bytes:
    return LENGTH.pack(len(payload)) + payload


def _read_exactly(stream: BinaryIO, size: int) -> bytes | None:
    data = stream.read(size)
    return data if data is not None and len(data) == size else None


def _read_frame(stream: BinaryIO) -> bytes | None:
    header = _read_exactly(stream, LENGTH.size)
    if header is None:
        return None
    return _read_exactly(stream, LENGTH.unpack(header)[0])


def answer(shared: dict[str, Any], fields: dict[str, Any]) -> bytes:
    """The pickled (verdict, hits) of one message; the raw bytes are not sent back."""
    verdict, hits = check_submission(Inputs(**fields, **shared))
    if isinstance(verdict, Submission):
        verdict = dataclasses.replace(verdict, raw=b"")
    return pickle.dumps((verdict, hits), protocol=pickle.HIGHEST_PROTOCOL)


def serve(source: BinaryIO, sink: BinaryIO) -> None:
    version, shared = -1, None
    while (payload := _read_frame(source)) is not None:
        kind, wanted, body = pickle.loads(payload)  # noqa: S301 - our parent, over our pipe
        if kind == "shared":
            version, shared = wanted, body
            continue
        if shared is None or wanted != version:
            status, result = STALE, b"stale"
        else:
            try:
                status, result = OK, answer(shared, body)
            except Exception as exc:  # reported to the parent, which re-checks in a thread
                status, result = RAISED, type(exc).__name__.encode("ascii", "replace")
        sink.write(bytes([status]) + frame(result))
        sink.flush()


def main() -> None:
    sink = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # a stray print must not corrupt the answers
    sys.stdout = sys.stderr
    serve(sys.stdin.buffer, sink)


if __name__ == "__main__":
    main()

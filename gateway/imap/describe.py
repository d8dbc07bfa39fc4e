"""What the IMAP server keeps about a stored mail so that header and structure
fetches never read or parse the body: the header bytes, ENVELOPE, BODYSTRUCTURE
(basic and extended), the size and line count. Made once when a mail is stored.

Owns: the description format (JSON, versioned; version 2 is deflated, about a
third of version 1's size, which is still read) and making it with pymap's MIME
parser. Must not: touch the store; the store keeps the description encrypted as
opaque bytes.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import zlib
from dataclasses import dataclass

from pymap.message import BaseLoadedMessage, BaseMessage
from pymap.mime import MessageContent
from pymap.parsing.specials import FetchRequirement

from gateway.imap import fast_format

VERSION = 2  # zlib-deflated JSON, fields as Latin-1 text; 1: JSON, fields base64
_FIELDS = ("header", "envelope", "body", "bodystructure")
fast_format.install()  # also in the parse process, which writes BODYSTRUCTUREs


class Unloadable(BaseMessage):
    """Stands in for the message object pymap's loaded view wants; never loaded."""

    async def load_content(self, requirement: FetchRequirement) -> BaseLoadedMessage:
        raise NotImplementedError


@dataclass(frozen=True)
class Description:
    header: bytes  # the top-level header, with its closing empty line
    envelope: bytes  # RFC 3501 §7.4.2 ENVELOPE, as sent
    body: bytes  # BODY (non-extensible BODYSTRUCTURE)
    bodystructure: bytes  # BODYSTRUCTURE with extension data
    size: int
    lines: int


def describe(raw: bytes) -> bytes:
    """The description of `raw` (a whole RFC 5322 message), serialized."""
    content = MessageContent.parse(raw)
    loaded = BaseLoadedMessage(
        Unloadable(1, dt.datetime.now(dt.UTC), ()), FetchRequirement.CONTENT, content
    )
    structure = loaded.get_body_structure()
    return serialize(
        header=bytes(content.header),
        envelope=bytes(loaded.get_envelope_structure()),
        body=bytes(structure),
        bodystructure=bytes(structure.extended),
        size=len(raw),
        lines=content.lines,
    )


def serialize(
    *, header: bytes, envelope: bytes, body: bytes, bodystructure: bytes, size: int, lines: int
) -> bytes:
    """A description's stored form (the fields of `Description`), version 2."""
    fields = {"header": header, "envelope": envelope, "body": body, "bodystructure": bodystructure}
    out: dict[str, object] = {"v": VERSION}
    out.update((k, v.decode("latin-1")) for k, v in fields.items())
    out["size"] = size
    out["lines"] = lines
    return zlib.compress(json.dumps(out, separators=(",", ":")).encode("ascii"), 6)


def read_description(data: bytes) -> Description:
    """ValueError when `data` is not a description this version understands."""
    if data[:1] == b"{":  # version 1, stored before descriptions were deflated
        fields = json.loads(data)
        if not isinstance(fields, dict) or fields.get("v") != 1:
            raise ValueError("unknown mail description version")
        raw = {k: base64.b64decode(fields[k]) for k in _FIELDS}
    else:
        try:
            fields = json.loads(zlib.decompress(data))
        except zlib.error:
            raise ValueError("unknown mail description version") from None
        if not isinstance(fields, dict) or fields.get("v") != VERSION:
            raise ValueError("unknown mail description version")
        raw = {k: str(fields[k]).encode("latin-1") for k in _FIELDS}
    return Description(**raw, size=int(fields["size"]), lines=int(fields["lines"]))

"""Describing a delivered copy without parsing its original again for every copy.

A copy is `prefix + original + suffix` (gateway.stamping.envelope): the original
sits verbatim in a message/rfc822 part and every copy of a message carries the
same original; copies differ only in the cover (prefix) and certificate
(suffix). The original is parsed once (its ENVELOPE, BODYSTRUCTURE and line
count, kept in a small in-process cache keyed by its SHA-256) and each copy is
parsed with a tiny stand-in message where the original goes; the stand-in's
ENVELOPE, BODYSTRUCTURE, size and lines are then replaced by the original's. The
result is byte for byte what `describe(prefix + original + suffix)` makes (the
tests compare them).

Owns: `describe_copy`, `describe_job` (the parse process's function: copy
requests of gateway.delivery.parse_worker, or whole mails) and the original's
cache. Must not: touch the
store. Failure behaviour: a copy whose layout is not the stamper's (no
message/rfc822 part holding the stand-in, a suffix that does not open with a
delimiter) is described whole, as before; malformed requests raise ValueError.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from pymap.message import BaseLoadedMessage
from pymap.mime import MessageContent
from pymap.parsing.response.fetch import BodyStructure, EnvelopeStructure
from pymap.parsing.specials import FetchRequirement

from gateway.delivery.parse_worker import split_copy_request
from gateway.imap.describe import Unloadable, describe, serialize

STANDIN = b"X-Barid-Standin: original\r\n\r\n"
_CACHE_SIZE = 32


@dataclass(frozen=True)
class _Original:
    envelope: EnvelopeStructure
    body: BodyStructure
    newlines: int


_cache: OrderedDict[bytes, _Original] = OrderedDict()
_cache_lock = threading.Lock()


def describe_job(payload: bytes) -> bytes:
    """The parse process's function: a `copy_request`, or a whole mail as `describe`."""
    parts = split_copy_request(payload)
    if parts is None:
        return describe(payload)
    return describe_copy(*parts)


def describe_copy(prefix: bytes, original: bytes, suffix: bytes) -> bytes:
    """`describe(prefix + original + suffix)`, parsing `original` once per process."""
    if not suffix.startswith(b"\r\n--") or STANDIN in prefix or STANDIN in original:
        return describe(prefix + original + suffix)
    facts = _original_facts(original)
    if facts is None:
        return describe(prefix + original + suffix)
    content = MessageContent.parse(prefix + STANDIN + suffix)
    spliced = _splicer(facts, len(original) - len(STANDIN), facts.newlines - STANDIN.count(b"\n"))
    loaded = spliced(Unloadable(1, dt.datetime.now(dt.UTC), ()), FetchRequirement.CONTENT, content)
    structure = loaded.get_body_structure()
    if not getattr(spliced, "used", False):
        return describe(prefix + original + suffix)  # not the stamper's layout
    return serialize(
        header=bytes(content.header),
        envelope=bytes(loaded.get_envelope_structure()),
        body=bytes(structure),
        bodystructure=bytes(structure.extended),
        size=len(prefix) + len(original) + len(suffix),
        lines=content.lines + facts.newlines - STANDIN.count(b"\n"),
    )


def _original_facts(original: bytes) -> _Original | None:
    key = hashlib.sha256(original).digest()
    with _cache_lock:
        found = _cache.get(key)
        if found is not None:
            _cache.move_to_end(key)
            return found
    boundary = b"barid-original-" + key.hex().encode("ascii")
    if boundary in original:
        return None
    # The original inside a message/rfc822 part followed by a delimiter, as in a copy,
    # so that its lines are split exactly as they are there.
    wrapper = b"".join(
        (
            b'Content-Type: multipart/mixed; boundary="' + boundary + b'"\r\n\r\n',
            b"--" + boundary + b"\r\nContent-Type: message/rfc822\r\n\r\n",
            original,
            b"\r\n--" + boundary + b"--\r\n",
        )
    )
    parts = MessageContent.parse(wrapper).body.nested
    if len(parts) != 1 or not parts[0].body.nested:
        return None
    inner = parts[0].body.nested[0]
    facts = _Original(
        envelope=BaseLoadedMessage._get_envelope_structure(inner),
        body=BaseLoadedMessage._get_body_structure(inner),
        newlines=original.count(b"\n"),
    )
    with _cache_lock:
        _cache[key] = facts
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return facts


def _is_standin(msg: Any) -> bool:
    return len(msg) == len(STANDIN) + 2 and bytes(msg) == STANDIN + b"\r\n"


def _splicer(facts: _Original, extra_size: int, extra_lines: int) -> Any:
    """pymap's loaded message whose structure answers the original's for the stand-in."""

    class Spliced(BaseLoadedMessage):
        used = False

        @classmethod
        def _get_envelope_structure(cls, msg: MessageContent) -> EnvelopeStructure:
            if _is_standin(msg):
                cls.used = True
                return facts.envelope
            return super()._get_envelope_structure(msg)

        @classmethod
        def _get_body_structure(cls, msg: MessageContent) -> BodyStructure:
            if _is_standin(msg):
                return facts.body
            return super()._get_body_structure(msg)

        @classmethod
        def _get_size_with_lines(cls, msg: MessageContent) -> tuple[int, int]:
            size, lines = super()._get_size_with_lines(msg)
            nested = msg.body.nested
            if (
                len(nested) == 1
                and msg.body.content_type.maintype == "message"
                and (_is_standin(nested[0]))
            ):
                return size + extra_size, lines + extra_lines
            return size, lines

    return Spliced

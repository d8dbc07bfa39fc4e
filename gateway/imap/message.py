"""A mail as pymap sees it: flags and UID, then its bytes or its stored description.

Owns: `Message` and `LoadedMessage` (pymap's `BaseMessage`, `BaseLoadedMessage`):
header, ENVELOPE and BODYSTRUCTURE answered from the stored description without
reading the body; the body read and parsed (off the loop when large) only when
a FETCH item opens it. Must not: record access (session.py does, before sending).
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Sequence
from typing import Any

from pymap.bytes import Writeable
from pymap.context import current_command
from pymap.interfaces.message import CachedMessage
from pymap.message import BaseLoadedMessage, BaseMessage
from pymap.mime import MessageContent
from pymap.parsing.command.select import FetchCommand
from pymap.parsing.response.fetch import BodyStructure, EnvelopeStructure
from pymap.parsing.specials import FetchRequirement

from gateway.imap.access import opens_body
from gateway.imap.context import PARSE_IN_THREAD_BYTES, flag_names, guard, to_flags
from gateway.imap.describe import Description, read_description
from gateway.store.mailbox.store import (
    MailboxStore,
    MailRow,
)


class _CachedEnvelope(EnvelopeStructure):
    """An ENVELOPE as stored at delivery: written as is, never recomputed."""

    def __init__(self, data: bytes) -> None:  # no super().__init__: nothing to parse
        self._data = data

    def __bytes__(self) -> bytes:
        return self._data

    def write(self, writer: Any) -> None:
        writer.write(self._data)


class _CachedBody(BodyStructure):
    """A BODY / BODYSTRUCTURE as stored at delivery."""

    def __init__(self, body: bytes, extended: bytes) -> None:  # no super().__init__
        self._body = body
        self._extended = extended

    def __bytes__(self) -> bytes:
        return self._body

    def write(self, writer: Any) -> None:
        writer.write(self._body)

    @property
    def extended(self) -> Any:
        return Writeable.wrap(self._extended)


class Message(BaseMessage):
    __slots__ = ["_store", "content_id", "description", "kind", "size"]

    def __init__(
        self,
        row: MailRow,
        store: MailboxStore,
        *,
        description: Description | None = None,
        expunged: bool = False,
    ) -> None:
        super().__init__(row.uid, row.internal_date, to_flags(row.flags), expunged=expunged)
        self.content_id = row.content_id
        self.size = row.size
        self.kind = row.kind
        self.description = description
        self._store = store

    @classmethod
    def expunged_copy(cls, cached: CachedMessage) -> Message:
        if not isinstance(cached, Message):
            raise TypeError(cached)
        row = MailRow(
            cached.uid,
            flag_names(cached.permanent_flags),
            cached.internal_date,
            cached.content_id,
            cached.size,
            cached.kind,
            False,
        )
        return cls(row, cached._store, description=cached.description, expunged=True)

    async def _description(self) -> Description:
        if self.description is None:
            meta = await guard(self._store.load_meta([self.content_id]))
            self.description = read_description(meta[self.content_id])
        return self.description

    async def load_content(self, requirement: FetchRequirement) -> LoadedMessage:
        if self.expunged:
            return LoadedMessage(self, requirement, None, self.description)
        if requirement.has_none(FetchRequirement.CONTENT):
            return LoadedMessage(self, requirement, None, self.description)
        description = await self._description()
        if requirement.has_all(FetchRequirement.BODY) and _needs_body():
            raw = await guard(self._store.load_bytes(self.content_id))
            if len(raw) > PARSE_IN_THREAD_BYTES:
                content = await asyncio.to_thread(MessageContent.parse, raw)
            else:
                content = MessageContent.parse(raw)
        elif isinstance(current_command.get(None), FetchCommand):
            content = None  # every item is answered from the description, unparsed
        else:
            content = MessageContent.parse(description.header)
        return LoadedMessage(self, requirement, content, description)


def header_fields(header: bytes) -> list[tuple[bytes, bytes]]:
    """(name, raw field with its folding and CRLF) of an RFC 5322 header block."""
    fields: list[tuple[bytes, bytes]] = []
    for line in header.splitlines(keepends=True):
        if line in (b"\r\n", b"\n"):
            break
        if line[:1] in (b" ", b"\t") and fields:
            name, raw = fields[-1]
            fields[-1] = (name, raw + line)
        else:
            fields.append((line.split(b":", 1)[0].strip(), line))
    return fields


def _needs_body() -> bool:
    """Whether the running command needs the body bytes; header, size, ENVELOPE and
    BODYSTRUCTURE items are answered from the stored description. Commands other
    than FETCH (SEARCH) get the body whenever pymap asks for it."""
    command = current_command.get()
    if not isinstance(command, FetchCommand):
        return True
    return any(_item_needs_body(attr) for attr in command.attributes)


def _item_needs_body(attr: Any) -> bool:
    # A part's own header (BODY[1.HEADER]) and BINARY.SIZE need the parsed body too.
    if opens_body(attr) or attr.value == b"BINARY.SIZE":
        return True
    return attr.section is not None and bool(attr.section.parts)


class LoadedMessage(BaseLoadedMessage):
    __slots__ = ["_description"]

    def __init__(
        self,
        message: Message,
        requirement: FetchRequirement,
        content: MessageContent | None,
        description: Description | None,
    ) -> None:
        super().__init__(message, requirement, content)
        self._description = description

    def _cached(self) -> Description | None:
        """The stored description, for FETCH (written as is); SEARCH reads the fields
        of pymap's own parsed structures, so it gets those."""
        if isinstance(current_command.get(None), FetchCommand):
            return self._description
        return None

    def get_envelope_structure(self) -> EnvelopeStructure:
        description = self._cached()
        if description is not None:
            return _CachedEnvelope(description.envelope)
        return super().get_envelope_structure()

    def get_body_structure(self) -> BodyStructure:
        description = self._cached()
        if description is not None:
            return _CachedBody(description.body, description.bodystructure)
        return super().get_body_structure()

    def get_message_headers(
        self,
        section: Sequence[int] | None = None,
        subset: Collection[bytes] | None = None,
        inverse: bool = False,
    ) -> Writeable:
        """BODY[HEADER], BODY[HEADER.FIELDS (...)], RFC822.HEADER from the stored
        header bytes, without parsing them (the common case of listing a folder)."""
        if section or self._content is not None or self._description is None:
            return super().get_message_headers(section, subset, inverse)
        header = self._description.header
        if subset is None:
            return Writeable.wrap(header)
        chosen = [raw for name, raw in header_fields(header) if inverse != (name.upper() in subset)]
        return Writeable.wrap(b"".join(chosen) + b"\r\n")

    def get_size(self, section: Sequence[int] | None = None) -> int:
        if not section and self._description is not None:
            return self._description.size
        return super().get_size(section)

    def _inside_multipart(self, section: Sequence[int] | None) -> bool:
        if not section or self._content is None:
            return False
        return bool(self._content.body.content_type.maintype == "multipart")

    def get_body(self, section: Sequence[int] | None = None, binary: bool = False) -> Writeable:
        return self._without_delimiter_crlf(super().get_body(section, binary), section)

    def get_message_text(self, section: Sequence[int] | None = None) -> Writeable:
        return self._without_delimiter_crlf(super().get_message_text(section), section)

    def _without_delimiter_crlf(self, data: Writeable, section: Sequence[int] | None) -> Writeable:
        """pymap 0.36.7 ends a body part with the CRLF that precedes the next boundary
        delimiter; RFC 2046 §5.1.1 makes that CRLF part of the delimiter, so BODY[n]
        would not be the part's exact bytes (and a signed part would not verify)."""
        if not self._inside_multipart(section):
            return data
        raw = bytes(data)
        return Writeable.wrap(raw[:-2]) if raw.endswith(b"\r\n") else data

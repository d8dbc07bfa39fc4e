"""The pymap backend over Barid's mailbox store: login, sessions, mailboxes, mails.

Owns: adapting gateway.mailbox.store to pymap's interfaces (pymap 0.36.7,
pinned: `LoginInterface`, `IdentityInterface`, `BaseSession`,
`MailboxSetInterface`, `MailboxDataInterface`, `BaseMessage`,
`BaseLoadedMessage`), batching what pymap would do mail by mail (FETCH, STORE,
COPY, MOVE and EXPUNGE each read or write the store once per command), serving
header, ENVELOPE and BODYSTRUCTURE fetches from the stored description without
reading the body, and recording every body fetch in the access trail *before*
the bytes are sent. Must not: read sockets (gateway.imap.server) or know SQL.

Failure behaviour: a store outage raises `Unavailable` (`NO [UNAVAILABLE]`);
a refused mailbox operation `NO` with a short reason; a body whose access
cannot be recorded is not sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from argparse import Namespace
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from ssl import SSLContext
from typing import Any, TypeVar

from pymap.backend.session import BaseSession
from pymap.bytes import Writeable
from pymap.concurrent import Event, Subsystem
from pymap.config import BackendCapability, IMAPConfig
from pymap.context import current_command, socket_info
from pymap.exceptions import (
    AuthorizationFailure,
    InvalidAuth,
    MailboxConflict,
    MailboxNotFound,
    NotAllowedError,
    ResponseError,
)
from pymap.flags import FlagOp
from pymap.interfaces.login import IdentityInterface, LoginInterface
from pymap.interfaces.message import CachedMessage
from pymap.interfaces.token import TokensInterface
from pymap.listtree import ListTree
from pymap.mailbox import MailboxSnapshot
from pymap.message import BaseLoadedMessage, BaseMessage
from pymap.mime import MessageContent
from pymap.parsing.command.select import FetchCommand
from pymap.parsing.message import AppendMessage
from pymap.parsing.response import ResponseCode, ResponseNo
from pymap.parsing.response.code import CopyUid
from pymap.parsing.response.fetch import BodyStructure, EnvelopeStructure
from pymap.parsing.specials import FetchRequirement, ObjectId, SequenceSet
from pymap.parsing.specials.flag import Flag, Recent, get_system_flags
from pymap.selected import SelectedMailbox, SelectedSet
from pymap.token import AllTokens
from pymap.user import UserMetadata
from pysasl import SASLAuth
from pysasl.creds.server import ServerCredentials
from pysasl.hashing import BuiltinHash

from gateway.auth import Authenticator, Outcome
from gateway.imap.access import AccessRecorder, AccessTarget, body_items, opens_body
from gateway.imap.describe import Description, describe, read_description
from gateway.mailbox import folders
from gateway.mailbox.notify import POLL_SECONDS
from gateway.mailbox.store import (
    MailboxError,
    MailboxExists,
    MailboxInfo,
    MailboxStore,
    MailRow,
    NoSuchMailbox,
    StoreUnavailable,
)
from gateway.mailbox.store import (
    MailboxNameError as _NameError,
)

# Mails larger than this are parsed in a worker thread, off the event loop.
PARSE_IN_THREAD_BYTES = 256 * 1024
MAX_SELECTED_SETS = 10_000
_T = TypeVar("_T")


class Unavailable(ResponseError):
    """The store is unavailable: `NO [UNAVAILABLE]`, try again later (RFC 5530)."""

    def get_response(self, tag: bytes) -> ResponseNo:
        return ResponseNo(
            tag, b"Mail store temporarily unavailable.", ResponseCode.of(b"UNAVAILABLE")
        )


class Refused(ResponseError):
    """A refused mailbox operation: `NO` with a short, safe reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self._reason = reason.encode("ascii", "replace")

    def get_response(self, tag: bytes) -> ResponseNo:
        return ResponseNo(tag, self._reason.capitalize() + b".")


async def _guard(call: Awaitable[_T]) -> _T:
    """Store errors as IMAP answers."""
    try:
        return await call
    except StoreUnavailable:
        raise Unavailable() from None
    except (NoSuchMailbox, KeyError):
        raise
    except (MailboxError, _NameError) as exc:
        raise Refused(str(exc)) from None


def _flag_names(flags: Iterable[Flag]) -> frozenset[str]:
    return frozenset(bytes(f).decode("ascii") for f in flags)


def _flags(names: Iterable[str]) -> frozenset[Flag]:
    return frozenset(Flag(name.encode("ascii")) for name in names)


# ---- configuration ----------------------------------------------------------------------


class BaridImapConfig(IMAPConfig):
    """pymap settings for one listener. `starttls=False` means implicit TLS: the
    connection is encrypted from the first byte, so login is offered at once.
    Login is never offered on a connection without TLS, loopback included."""

    def __init__(
        self,
        *,
        ssl_context: SSLContext,
        starttls: bool,
        max_append_size: int,
        greeting: str,
    ) -> None:
        args = Namespace(passlib_cfg=None, proxy_protocol=None, inherited_sockets=None)
        # Built once: SASLAuth.named looks the mechanisms up among installed packages.
        self._tls_auth = SASLAuth.named([b"PLAIN"])
        super().__init__(
            args,
            host=None,
            port=0,
            ssl_context=ssl_context,
            tls_enabled=starttls,
            max_append_len=max_append_size,
            bad_command_limit=None,  # counted by gateway.imap.server, which says BYE
            hash_context=BuiltinHash(),
            cpu_subsystem=Subsystem.for_asyncio(),
            reject_dnsbl=False,
            invalid_user_sleep=0.0,
            admin_key=b"",
        )
        self._greeting = greeting.encode("ascii", "replace")

    @property
    def backend_capability(self) -> BackendCapability:
        return BackendCapability(
            idle=True, object_id=False, multi_append=True, custom=[b"SPECIAL-USE"]
        )

    @property
    def tls_auth(self) -> SASLAuth:
        return self._tls_auth

    @property
    def greeting(self) -> bytes:
        return self._greeting


# ---- shared state of one IMAP service ----------------------------------------------------


@dataclass
class ImapContext:
    store: MailboxStore
    authenticator: Authenticator
    access: AccessRecorder
    employee_id: Callable[[str], Awaitable[int | None]]
    selected_sets: dict[int, SelectedSet] = field(default_factory=dict)

    def selected_set(self, mailbox_id: int) -> SelectedSet:
        """The in-process sessions that have `mailbox_id` selected (pymap tracks them
        weakly inside the set); sets nobody uses are dropped now and then."""
        found = self.selected_sets.get(mailbox_id)
        if found is None:
            if len(self.selected_sets) >= MAX_SELECTED_SETS:
                for key, value in list(self.selected_sets.items()):
                    if value.any_selected is None:
                        del self.selected_sets[key]
            found = self.selected_sets[mailbox_id] = SelectedSet()
        return found


def client_address() -> str:
    info = socket_info.get()
    with contextlib.suppress(Exception):
        ip = info.peername_ip
        if ip is not None:
            return str(ip)
    return "unknown"


# ---- login ---------------------------------------------------------------------------------


class _SecretCatcher:
    """A pysasl identity that keeps the presented secret, so the password can be
    checked against the directory's Argon2id hash (pysasl compares it otherwise)."""

    def __init__(self) -> None:
        self.secret: str | None = None

    def compare_authcid(self, authcid: str) -> bool:
        return True

    def compare_secret(self, value: str) -> bool:
        self.secret = value
        return True


class Login(LoginInterface):
    def __init__(self, ctx: ImapContext, config: IMAPConfig, protocol: str) -> None:
        self._ctx = ctx
        self._config = config
        self._protocol = protocol
        self._tokens = AllTokens(config)

    @property
    def tokens(self) -> TokensInterface:
        return self._tokens

    async def authenticate(self, credentials: ServerCredentials) -> Identity:
        catcher = _SecretCatcher()
        credentials.verify(catcher)  # type: ignore[arg-type]
        if catcher.secret is None:
            raise InvalidAuth()
        result = await self._ctx.authenticator.check(
            client_address(), credentials.authcid, catcher.secret, protocol=self._protocol
        )
        if result.outcome is Outcome.UNAVAILABLE:
            raise Unavailable()
        if not result.ok:
            raise InvalidAuth()
        try:
            employee_id = await self._ctx.employee_id(result.account)
        except StoreUnavailable:
            raise Unavailable() from None
        if employee_id is None:
            raise InvalidAuth()
        return Identity(result.account, employee_id, self._ctx, self._config, self._protocol)

    async def authorize(self, authenticated: IdentityInterface, authzid: str) -> Identity:
        if not isinstance(authenticated, Identity):
            raise AuthorizationFailure()
        if authzid and authzid.strip().lower() != authenticated.name:
            raise AuthorizationFailure()
        return authenticated


class Identity(IdentityInterface):
    def __init__(
        self, address: str, employee_id: int, ctx: ImapContext, config: IMAPConfig, protocol: str
    ) -> None:
        self._address = address
        self.employee_id = employee_id
        self._ctx = ctx
        self._config = config
        self._protocol = protocol

    @property
    def name(self) -> str:
        return self._address

    @property
    def roles(self) -> frozenset[str]:
        return frozenset()

    @contextlib.asynccontextmanager
    async def new_session(self) -> AsyncIterator[Session]:
        await _guard(self._ctx.store.ensure_folders(self.employee_id))
        yield Session(self, self._ctx, self._config, self._protocol)

    async def new_token(self, *, expiration: dt.datetime | None = None) -> str | None:
        return None

    async def get(self) -> UserMetadata:
        raise NotAllowedError("Account data is managed by the directory.")

    async def set(self, metadata: UserMetadata) -> int | None:
        raise NotAllowedError("Account data is managed by the directory.")

    async def delete(self) -> None:
        raise NotAllowedError("Account data is managed by the directory.")


# ---- messages ---------------------------------------------------------------------------


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
        super().__init__(row.uid, row.internal_date, _flags(row.flags), expunged=expunged)
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
            _flag_names(cached.permanent_flags),
            cached.internal_date,
            cached.content_id,
            cached.size,
            cached.kind,
            False,
        )
        return cls(row, cached._store, description=cached.description, expunged=True)

    async def _description(self) -> Description:
        if self.description is None:
            meta = await _guard(self._store.load_meta([self.content_id]))
            self.description = read_description(meta[self.content_id])
        return self.description

    async def load_content(self, requirement: FetchRequirement) -> LoadedMessage:
        if self.expunged:
            return LoadedMessage(self, requirement, None, self.description)
        if requirement.has_none(FetchRequirement.CONTENT):
            return LoadedMessage(self, requirement, None, self.description)
        description = await self._description()
        if requirement.has_all(FetchRequirement.BODY) and _needs_body():
            raw = await _guard(self._store.load_bytes(self.content_id))
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


# ---- one mailbox -------------------------------------------------------------------------


class MailboxData:
    """pymap's `MailboxDataInterface` for one stored mailbox (a fresh view per use)."""

    def __init__(self, info: MailboxInfo, ctx: ImapContext) -> None:
        self.info = info
        self._ctx = ctx
        self._store = ctx.store

    @property
    def mailbox_id(self) -> ObjectId:
        return ObjectId(b"M%d" % self.info.id)

    @property
    def readonly(self) -> bool:
        return False

    @property
    def uid_validity(self) -> int:
        return self.info.uid_validity

    @property
    def permanent_flags(self) -> frozenset[Flag]:
        return get_system_flags() - {Recent}

    @property
    def session_flags(self) -> frozenset[Flag]:
        return frozenset({Recent})

    @property
    def selected_set(self) -> SelectedSet:
        return self._ctx.selected_set(self.info.id)

    def _message(self, row: MailRow, description: Description | None = None) -> Message:
        return Message(row, self._store, description=description)

    async def update_selected(
        self, selected: SelectedMailbox, *, wait_on: Event | None = None
    ) -> SelectedMailbox:
        since = selected.mod_sequence
        if wait_on is not None:
            with self._store.notifier.subscription(self.info.id) as woken:
                changes = await _guard(self._store.changes(self.info.id, since))
                if since is not None and not changes.updated and not changes.expunged:
                    await _first_of(wait_on.wait(), woken.wait(), seconds=POLL_SECONDS)
                    changes = await _guard(self._store.changes(self.info.id, since))
        else:
            changes = await _guard(self._store.changes(self.info.id, since))
        selected.mod_sequence = changes.highest_modseq
        selected.add_updates([self._message(row) for row in changes.updated], changes.expunged)
        return selected

    async def append(self, append_msg: AppendMessage, *, recent: bool = False) -> Message:
        raw = bytes(append_msg.literal)
        meta = await _describe(raw)
        flags = _flag_names(append_msg.flag_set) & _flag_names(self.permanent_flags)
        when = append_msg.when
        if when is not None and when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        uid = await _guard(
            self._store.append(
                self.info.id, raw, meta, flags=flags, internal_date=when, recent=recent
            )
        )
        rows = await _guard(self._store.rows(self.info.id, [uid]))
        return self._message(rows[uid])

    async def copy(self, uid: int, destination: MailboxData, *, recent: bool = False) -> int | None:
        pairs = await _guard(
            self._store.copy(self.info.id, [uid], destination.info.id, move=False, recent=recent)
        )
        return pairs[0][1] if pairs else None

    async def move(self, uid: int, destination: MailboxData, *, recent: bool = False) -> int | None:
        pairs = await _guard(
            self._store.copy(self.info.id, [uid], destination.info.id, move=True, recent=recent)
        )
        return pairs[0][1] if pairs else None

    async def get(self, uid: int, cached_msg: CachedMessage) -> Message:
        rows = await _guard(self._store.rows(self.info.id, [uid]))
        row = rows.get(uid)
        if row is None:
            return Message.expunged_copy(cached_msg)
        return self._message(row)

    async def update(
        self, uid: int, cached_msg: CachedMessage, flag_set: frozenset[Flag], mode: FlagOp
    ) -> Message:
        await _guard(
            self._store.store_flags(self.info.id, [uid], _flag_names(flag_set), _MODES[mode])
        )
        return await self.get(uid, cached_msg)

    async def delete(self, uids: Iterable[int]) -> None:
        await _guard(self._store.expunge(self.info.id, list(uids)))

    async def claim_recent(self, selected: SelectedMailbox) -> None:
        for uid in await _guard(self._store.claim_recent(self.info.id)):
            selected.session_flags.add_recent(uid)

    async def cleanup(self) -> None:
        return None

    async def snapshot(self) -> MailboxSnapshot:
        status = await _guard(self._store.status(self.info.id))
        return MailboxSnapshot(
            self.mailbox_id,
            self.readonly,
            status.uid_validity,
            self.permanent_flags,
            self.session_flags,
            status.exists,
            status.recent,
            status.unseen,
            status.first_unseen,
            status.next_uid,
        )

    async def find(
        self, seq_set: SequenceSet, selected: SelectedMailbox
    ) -> AsyncIterator[tuple[int, Message]]:
        pairs = list(selected.messages.get_all(seq_set))
        rows = await _guard(self._store.rows(self.info.id, [c.uid for _, c in pairs]))
        for seq, cached in pairs:
            row = rows.get(cached.uid)
            yield seq, (self._message(row) if row else Message.expunged_copy(cached))

    async def find_deleted(self, seq_set: SequenceSet, selected: SelectedMailbox) -> Sequence[int]:
        uids = [uid for _, uid in selected.messages.get_uids(seq_set)]
        return await _guard(self._store.deleted_uids(self.info.id, uids))


_MODES = {FlagOp.ADD: "add", FlagOp.DELETE: "remove", FlagOp.REPLACE: "replace"}


async def _describe(raw: bytes) -> bytes:
    if len(raw) > PARSE_IN_THREAD_BYTES:
        return await asyncio.to_thread(describe, raw)
    return describe(raw)


async def _first_of(*waits: Awaitable[object], seconds: float) -> None:
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


# ---- the set of an employee's mailboxes ---------------------------------------------------


class MailboxSet:
    """pymap's `MailboxSetInterface` for one employee."""

    def __init__(self, employee_id: int, ctx: ImapContext) -> None:
        self.employee_id = employee_id
        self._ctx = ctx
        self._store = ctx.store

    @property
    def delimiter(self) -> str:
        return folders.DELIMITER

    async def set_subscribed(self, name: str, subscribed: bool) -> None:
        try:
            await _guard(self._store.set_subscribed(self.employee_id, name, subscribed))
        except NoSuchMailbox:
            # pymap's SUBSCRIBE does not translate KeyError: answer NO here.
            raise MailboxNotFound(name) from None

    async def _infos(self) -> list[MailboxInfo]:
        return await _guard(self._store.list_mailboxes(self.employee_id))

    async def list_subscribed(self) -> ListTree:
        names = [m.name for m in await self._infos() if m.subscribed]
        return ListTree(self.delimiter).update("INBOX", *names)

    async def list_mailboxes(self) -> ListTree:
        names = [m.name for m in await self._infos()]
        return ListTree(self.delimiter).update("INBOX", *names)

    async def special_uses(self) -> dict[str, bytes]:
        # pymap writes the backslash of each LIST attribute itself.
        return {
            m.name: m.special_use.lstrip("\\").encode()
            for m in await self._infos()
            if m.special_use
        }

    async def get_mailbox(self, name: str) -> MailboxData:
        try:
            info = await _guard(self._store.get_mailbox(self.employee_id, name))
        except NoSuchMailbox:
            raise KeyError(name) from None
        return MailboxData(info, self._ctx)

    async def add_mailbox(self, name: str) -> ObjectId:
        try:
            info = await _guard(self._store.create_mailbox(self.employee_id, name))
        except MailboxExists:
            raise ValueError(name) from None
        return ObjectId(b"M%d" % info.id)

    async def delete_mailbox(self, name: str) -> None:
        try:
            await _guard(self._store.delete_mailbox(self.employee_id, name))
        except NoSuchMailbox:
            raise KeyError(name) from None

    async def rename_mailbox(self, before: str, after: str) -> None:
        try:
            await _guard(self._store.rename_mailbox(self.employee_id, before, after))
        except NoSuchMailbox:
            raise KeyError(before) from None
        except MailboxExists:
            raise ValueError(after) from None


# ---- the session -------------------------------------------------------------------------


class Session(BaseSession[Message]):
    def __init__(
        self, identity: Identity, ctx: ImapContext, config: IMAPConfig, protocol: str
    ) -> None:
        super().__init__(identity.name)
        self._identity = identity
        self._ctx = ctx
        self._config = config
        self._protocol = protocol
        self._mailbox_set = MailboxSet(identity.employee_id, ctx)

    @property
    def config(self) -> IMAPConfig:
        return self._config

    @property
    def mailbox_set(self) -> Any:
        return self._mailbox_set

    async def list_mailboxes(
        self,
        ref_name: str,
        filter_: str,
        subscribed: bool = False,
        selected: SelectedMailbox | None = None,
    ) -> tuple[Iterable[tuple[str, str | None, Sequence[bytes]]], SelectedMailbox | None]:
        found, updates = await super().list_mailboxes(ref_name, filter_, subscribed, selected)
        uses = await self._mailbox_set.special_uses()
        out = [
            (name, sep, [*attrs, uses[name]] if name in uses else attrs)
            for name, sep, attrs in found
        ]
        return out, updates

    async def create_mailbox(
        self, name: str, selected: SelectedMailbox | None = None
    ) -> tuple[ObjectId, SelectedMailbox | None]:
        try:
            return await super().create_mailbox(name, selected)
        except MailboxConflict:
            raise
        except ValueError as exc:  # a bad name (MailboxNameError is a ValueError)
            raise Refused(str(exc)) from None

    async def fetch_messages(
        self, selected: SelectedMailbox, sequence_set: SequenceSet, set_seen: bool
    ) -> tuple[Iterable[tuple[int, Message]], SelectedMailbox]:
        mbx: MailboxData = await self._get_selected(selected)  # type: ignore[assignment]
        store = self._ctx.store
        pairs = list(selected.messages.get_all(sequence_set))
        uids = [cached.uid for _, cached in pairs]
        rows = await _guard(store.rows(mbx.info.id, uids))
        command = current_command.get()
        items = body_items(command.attributes) if isinstance(command, FetchCommand) else []
        if items:  # recorded before anything is changed or sent
            await self._record_access(mbx, sorted(rows.values(), key=lambda r: r.uid), items)
        if set_seen and rows:
            await _guard(store.store_flags(mbx.info.id, uids, frozenset({"\\Seen"}), "add"))
            rows = await _guard(store.rows(mbx.info.id, uids))
        metas = await _guard(store.load_meta({r.content_id for r in rows.values()}))
        messages: list[tuple[int, Message]] = []
        for seq, cached in pairs:
            row = rows.get(cached.uid)
            if row is None:
                messages.append((seq, Message.expunged_copy(cached)))
                continue
            meta = metas.get(row.content_id)
            description = read_description(meta) if meta is not None else None
            messages.append((seq, Message(row, store, description=description)))
        return messages, await mbx.update_selected(selected)

    async def _record_access(self, mbx: MailboxData, rows: list[MailRow], items: list[str]) -> None:
        official = [m for m in rows if m.kind in ("copy", "original")]
        if not official:
            return
        facts = await _guard(self._ctx.store.content_facts({m.content_id for m in official}))
        targets = []
        for message in official:
            fact = facts.get(message.content_id)
            if fact is None or fact.registry is None:
                continue
            targets.append(
                AccessTarget(
                    registry=fact.registry,
                    trace=fact.trace_code,
                    copy="recipient" if fact.kind == "copy" else "sender",
                    mailbox=mbx.info.name,
                    uid=message.uid,
                )
            )
        try:
            await self._ctx.access.record(
                employee=self._identity.name,
                protocol=self._protocol,
                client=client_address(),
                targets=targets,
                items=items,
            )
        except StoreUnavailable:
            raise Unavailable() from None

    async def update_flags(
        self,
        selected: SelectedMailbox,
        sequence_set: SequenceSet,
        flag_set: frozenset[Flag],
        mode: FlagOp = FlagOp.REPLACE,
    ) -> tuple[Iterable[tuple[int, Message]], SelectedMailbox]:
        if selected.readonly:
            return await super().update_flags(selected, sequence_set, flag_set, mode)
        mbx: MailboxData = await self._get_selected(selected)  # type: ignore[assignment]
        store = self._ctx.store
        permanent = selected.permanent_flags & flag_set
        pairs = list(selected.messages.get_all(sequence_set))
        uids = [cached.uid for _, cached in pairs]
        await _guard(store.store_flags(mbx.info.id, uids, _flag_names(permanent), _MODES[mode]))
        rows = await _guard(store.rows(mbx.info.id, uids))
        out: list[tuple[int, Message]] = []
        for seq, cached in pairs:
            row = rows.get(cached.uid)
            if row is None:
                out.append((seq, Message.expunged_copy(cached)))
                continue
            selected.session_flags.update(cached.uid, flag_set, mode)
            out.append((seq, Message(row, store)))
        return out, await mbx.update_selected(selected)

    async def copy_messages(
        self, selected: SelectedMailbox, sequence_set: SequenceSet, mailbox: str
    ) -> tuple[CopyUid | None, SelectedMailbox]:
        return await self._copy(selected, sequence_set, mailbox, move=False)

    async def move_messages(
        self, selected: SelectedMailbox, sequence_set: SequenceSet, mailbox: str
    ) -> tuple[CopyUid | None, SelectedMailbox]:
        return await self._copy(selected, sequence_set, mailbox, move=True)

    async def _copy(
        self, selected: SelectedMailbox, sequence_set: SequenceSet, mailbox: str, *, move: bool
    ) -> tuple[CopyUid | None, SelectedMailbox]:
        mbx: MailboxData = await self._get_selected(selected)  # type: ignore[assignment]
        dest: MailboxData = await self._get_mailbox(mailbox, try_create=True)  # type: ignore[assignment]
        dest_selected = self._pick_selected(selected, dest)
        uids = [uid for _, uid in selected.messages.get_uids(sequence_set)]
        pairs = await _guard(
            self._ctx.store.copy(
                mbx.info.id, uids, dest.info.id, move=move, recent=not dest_selected
            )
        )
        if dest_selected:
            for _, new_uid in pairs:
                dest_selected.session_flags.add_recent(new_uid)
        copy_uid = CopyUid(dest.uid_validity, pairs) if pairs else None
        return copy_uid, await mbx.update_selected(selected)

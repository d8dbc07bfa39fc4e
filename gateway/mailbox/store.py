"""Mailboxes in the SQL store: folders, UIDs, flags, expunges, encrypted contents.

Owns: every read and write of `mailboxes`, `mailbox_messages`,
`mailbox_expunges` and `mail_contents`, the UID and modseq counters, and the
change notices sent after commits. Must not: speak IMAP (gateway.imap adapts
this to pymap) or decide who may read what (callers pass the employee id they
authenticated).

Contracts:
- UIDs (RFC 3501 §2.3.1.1) are allocated by one `UPDATE mailboxes SET next_uid =
  next_uid + n, highest_modseq = highest_modseq + 1 ... RETURNING`, inside the
  transaction that inserts the rows, so they are strictly ascending and never
  reused, on SQLite (one writer) and PostgreSQL (row lock) alike, across nodes.
- Every change (append, flags, expunge) takes the next modseq of its mailbox;
  `changes(mailbox, since)` returns what changed after `since`, so a session
  learns of other sessions' work (and IDLE is woken by the notifier).
- Mail bytes are blobs encrypted at rest (gateway.store.blobs); a content is a
  list of blob ids read in order, so a delivered copy reuses the stored original
  (prefix + original + suffix) and COPY/MOVE never duplicate bytes. `meta` is an
  opaque description (header, cached ENVELOPE/BODYSTRUCTURE) made by the caller's
  `describe` function and also encrypted.
- Database trouble raises `StoreUnavailable` (nothing was changed); the notices go
  out only after a commit (in-process at once, and on PostgreSQL by NOTIFY, which
  PostgreSQL delivers at commit).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import secrets
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import and_, delete, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.mailbox.folders import (
    DELIMITER,
    INBOX,
    STANDARD_FOLDERS,
    MailboxNameError,
    check_name,
    is_protected,
    normalize,
)
from gateway.mailbox.notify import MailboxNotifier
from gateway.store.blobs import BlobCipher, open_blob, seal_blob
from gateway.store.db import sqlite_write_lock, transaction, utcnow
from gateway.store.messages import DATABASE_ERRORS, StoreUnavailable, database_trouble
from gateway.store.models import (
    Blob,
    InboundCopy,
    Mailbox,
    MailboxExpunge,
    MailboxMessage,
    MailContent,
    Message,
    MessageCopy,
)

PURPOSE_MAIL = "mailbox-mail"
PURPOSE_META = "mailbox-meta"
SYSTEM_FLAGS = frozenset({"\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft"})
MAX_KEYWORDS = 64
# RFC 3501 §9: atom-specials (and anything outside printable ASCII).
_NOT_ATOM = frozenset('(){ %*"\\]') | frozenset(chr(c) for c in range(0x21)) | {"\x7f"}


class MailboxError(Exception):
    """A refused mailbox operation; the text is safe to show a client."""


class NoSuchMailbox(MailboxError):
    pass


class MailboxExists(MailboxError):
    pass


@dataclass(frozen=True)
class MailboxInfo:
    id: int
    name: str
    special_use: str | None
    uid_validity: int
    subscribed: bool


@dataclass(frozen=True)
class MailboxStatus:
    exists: int
    recent: int
    unseen: int
    first_unseen: int | None  # message sequence number
    next_uid: int
    uid_validity: int
    highest_modseq: int


@dataclass(frozen=True)
class MailRow:
    """One mail of a mailbox, without its bytes."""

    uid: int
    flags: frozenset[str]
    internal_date: dt.datetime
    content_id: int
    size: int
    kind: str
    recent: bool


@dataclass(frozen=True)
class Changes:
    highest_modseq: int
    updated: list[MailRow]
    expunged: list[int]


@dataclass(frozen=True)
class ContentFacts:
    """What a stored content is, for the access trail."""

    content_id: int
    kind: str
    registry: str | None
    trace_code: str | None


def parse_time(value: str) -> dt.datetime:
    return dt.datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC)


def format_time(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def flags_text(flags: Iterable[str]) -> str:
    return " ".join(sorted(set(flags)))


def flags_of(textual: str) -> frozenset[str]:
    return frozenset(textual.split())


def apply_flags(current: frozenset[str], flags: frozenset[str], mode: str) -> frozenset[str]:
    """RFC 3501 §6.4.6: "add" (+FLAGS), "remove" (-FLAGS) or "replace" (FLAGS)."""
    if mode == "add":
        return current | flags
    if mode == "remove":
        return current - flags
    if mode == "replace":
        return flags
    raise ValueError(f"unknown flag mode {mode!r}")


def check_flags(flags: Iterable[str]) -> frozenset[str]:
    """System flags and at most MAX_KEYWORDS atom keywords; MailboxError otherwise."""
    out = frozenset(flags)
    keywords = [f for f in out if not f.startswith("\\")]
    if len(keywords) > MAX_KEYWORDS:
        raise MailboxError("too many keywords")
    for flag in out:
        if flag.startswith("\\"):
            if flag not in SYSTEM_FLAGS:
                raise MailboxError("unknown system flag")
        elif not flag or len(flag) > 100 or not flag.isascii() or any(c in _NOT_ATOM for c in flag):
            raise MailboxError("invalid flag")  # keywords are atoms (RFC 3501 §9)
    return out


def _row(message: MailboxMessage, content: MailContent) -> MailRow:
    return MailRow(
        uid=message.uid,
        flags=flags_of(message.flags),
        internal_date=parse_time(message.internal_date),
        content_id=message.content_id,
        size=content.size,
        kind=content.kind,
        recent=message.recent,
    )


class MailboxStore:
    """Mailboxes of the directory's employees; see the module docstring."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        cipher: BlobCipher,
        notifier: MailboxNotifier,
    ) -> None:
        self._sessions = sessions
        self._cipher = cipher
        self.notifier = notifier
        self._write_lock = sqlite_write_lock(sessions)
        bind = sessions.kw.get("bind")
        self._postgres = getattr(getattr(bind, "dialect", None), "name", "") == "postgresql"

    # ---- transactions -----------------------------------------------------------

    @contextlib.asynccontextmanager
    async def writing(self, operation: str) -> AsyncIterator[WriteScope]:
        """One write transaction; notices for the mailboxes it touched go out after
        the commit. Database errors become StoreUnavailable."""
        scope = WriteScope(self)
        try:
            async with contextlib.AsyncExitStack() as stack:
                if self._write_lock is not None:
                    await stack.enter_async_context(self._write_lock)
                scope.session = await stack.enter_async_context(transaction(self._sessions))
                yield scope
                if scope.touched and self._postgres:
                    await self.notifier.publish_in(scope.session, scope.touched)
        except IntegrityError:
            raise  # a conflict (e.g. a name taken meanwhile), for the caller to name
        except DATABASE_ERRORS as exc:
            raise database_trouble(operation, exc) from None
        self.notifier.changed(scope.touched)

    @contextlib.asynccontextmanager
    async def reading(self, operation: str) -> AsyncIterator[AsyncSession]:
        try:
            async with self._sessions() as session:
                yield session
        except DATABASE_ERRORS as exc:
            raise database_trouble(operation, exc) from None

    # ---- folders ------------------------------------------------------------------

    async def ensure_folders(self, employee_id: int) -> None:
        """Create whichever standard folders the employee lacks (idempotent)."""
        async with self.reading("ensure_folders") as session:
            have = set(
                (
                    await session.scalars(
                        select(Mailbox.name).where(Mailbox.employee_id == employee_id)
                    )
                ).all()
            )
        if all(folder.name in have for folder in STANDARD_FOLDERS):
            return
        async with self.writing("ensure_folders") as scope:
            await ensure_folders_in(scope.session, employee_id)

    async def list_mailboxes(self, employee_id: int) -> list[MailboxInfo]:
        async with self.reading("list_mailboxes") as session:
            rows = (
                await session.scalars(
                    select(Mailbox).where(Mailbox.employee_id == employee_id).order_by(Mailbox.name)
                )
            ).all()
        return [_info(m) for m in rows]

    async def get_mailbox(self, employee_id: int, name: str) -> MailboxInfo:
        """NoSuchMailbox when the employee has no folder of that name."""
        async with self.reading("get_mailbox") as session:
            found = await session.scalar(
                select(Mailbox).where(
                    Mailbox.employee_id == employee_id, Mailbox.name == normalize(name)
                )
            )
        if found is None:
            raise NoSuchMailbox("no such mailbox")
        return _info(found)

    async def create_mailbox(self, employee_id: int, name: str) -> MailboxInfo:
        """MailboxNameError for a bad name, MailboxExists when taken. Missing parent
        levels are created too (RFC 3501 §6.3.3)."""
        name = check_name(name.rstrip(DELIMITER)) if name.endswith(DELIMITER) else check_name(name)
        levels = name.split(DELIMITER)
        try:
            async with self.writing("create_mailbox") as scope:
                session = scope.session
                existing = set(
                    (
                        await session.scalars(
                            select(Mailbox.name).where(Mailbox.employee_id == employee_id)
                        )
                    ).all()
                )
                if name in existing:
                    raise MailboxExists("mailbox already exists")
                created = None
                for depth in range(1, len(levels) + 1):
                    path = DELIMITER.join(levels[:depth])
                    if path not in existing:
                        created = await _insert_mailbox(session, employee_id, path, None)
                assert created is not None
                return _info(created)
        except IntegrityError:
            raise MailboxExists("mailbox already exists") from None

    async def delete_mailbox(self, employee_id: int, name: str) -> None:
        """RFC 3501 §6.3.4; standard folders are refused. The mails go with it."""
        name = normalize(name)
        if is_protected(name):
            raise MailboxError("standard folders cannot be deleted")
        async with self.writing("delete_mailbox") as scope:
            session = scope.session
            box = await session.scalar(
                select(Mailbox).where(Mailbox.employee_id == employee_id, Mailbox.name == name)
            )
            if box is None:
                raise NoSuchMailbox("no such mailbox")
            prefix = name + DELIMITER
            # An exact, case-sensitive prefix test (SQLite's LIKE ignores ASCII case).
            child = await session.scalar(
                select(Mailbox.id).where(
                    Mailbox.employee_id == employee_id,
                    func.substr(Mailbox.name, 1, len(prefix)) == prefix,
                )
            )
            if child is not None:
                raise MailboxError("mailbox has children; delete them first")
            await session.execute(delete(MailboxMessage).where(MailboxMessage.mailbox_id == box.id))
            await session.execute(delete(MailboxExpunge).where(MailboxExpunge.mailbox_id == box.id))
            await session.execute(delete(Mailbox).where(Mailbox.id == box.id))
            scope.touched.add(box.id)

    async def rename_mailbox(self, employee_id: int, before: str, after: str) -> None:
        """RFC 3501 §6.3.5, children move along; standard folders stay where they are."""
        before, after = normalize(before), check_name(after)
        if is_protected(before) or is_protected(after):
            raise MailboxError("standard folders cannot be renamed")
        if after.startswith(before + DELIMITER):
            raise MailboxError("a mailbox cannot be moved into itself")
        try:
            async with self.writing("rename_mailbox") as scope:
                session = scope.session
                boxes = (
                    await session.scalars(select(Mailbox).where(Mailbox.employee_id == employee_id))
                ).all()
                names = {b.name: b for b in boxes}
                if before not in names:
                    raise NoSuchMailbox("no such mailbox")
                if after in names:
                    raise MailboxExists("mailbox already exists")
                for box in boxes:
                    if box.name == before or box.name.startswith(before + DELIMITER):
                        box.name = after + box.name[len(before) :]
                        check_name(box.name)
                        box.uid_validity = new_uid_validity()
                        scope.touched.add(box.id)
                await session.flush()
                # RFC 3501 §6.3.5: missing superior levels of the new name are created.
                levels = after.split(DELIMITER)
                for depth in range(1, len(levels)):
                    parent = DELIMITER.join(levels[:depth])
                    if parent not in names:
                        await _insert_mailbox(session, employee_id, parent, None)
        except IntegrityError:
            raise MailboxExists("mailbox already exists") from None

    async def set_subscribed(self, employee_id: int, name: str, subscribed: bool) -> None:
        async with self.writing("set_subscribed") as scope:
            result = await scope.session.execute(
                update(Mailbox)
                .where(Mailbox.employee_id == employee_id, Mailbox.name == normalize(name))
                .values(subscribed=subscribed)
            )
            if not result.rowcount:  # type: ignore[attr-defined]
                raise NoSuchMailbox("no such mailbox")

    # ---- state ----------------------------------------------------------------------

    async def status(self, mailbox_id: int) -> MailboxStatus:
        async with self.reading("status") as session:
            box = await session.get(Mailbox, mailbox_id)
            if box is None:
                raise NoSuchMailbox("no such mailbox")
            rows = (
                await session.execute(
                    select(MailboxMessage.flags, MailboxMessage.recent)
                    .where(MailboxMessage.mailbox_id == mailbox_id)
                    .order_by(MailboxMessage.uid)
                )
            ).all()
        unseen = 0
        first_unseen = None
        recent = 0
        for seq, (flags, is_recent) in enumerate(rows, start=1):
            if "\\Seen" not in flags_of(flags):
                unseen += 1
                if first_unseen is None:
                    first_unseen = seq
            recent += bool(is_recent)
        return MailboxStatus(
            exists=len(rows),
            recent=recent,
            unseen=unseen,
            first_unseen=first_unseen,
            next_uid=box.next_uid,
            uid_validity=box.uid_validity,
            highest_modseq=box.highest_modseq,
        )

    async def changes(self, mailbox_id: int, since: int | None) -> Changes:
        """Mails changed (or all, for since=None) and UIDs expunged after `since`."""
        async with self.reading("changes") as session:
            box = await session.get(Mailbox, mailbox_id)
            if box is None:
                raise NoSuchMailbox("no such mailbox")
            query = (
                select(MailboxMessage, MailContent)
                .join(MailContent, MailContent.id == MailboxMessage.content_id)
                .where(MailboxMessage.mailbox_id == mailbox_id)
                .order_by(MailboxMessage.uid)
            )
            expunged: list[int] = []
            if since is not None:
                if since >= box.highest_modseq:
                    return Changes(box.highest_modseq, [], [])
                query = query.where(MailboxMessage.modseq > since)
                expunged = list(
                    (
                        await session.scalars(
                            select(MailboxExpunge.uid).where(
                                MailboxExpunge.mailbox_id == mailbox_id,
                                MailboxExpunge.modseq > since,
                            )
                        )
                    ).all()
                )
            rows = [_row(m, c) for m, c in (await session.execute(query)).all()]
        return Changes(box.highest_modseq, rows, expunged)

    async def rows(self, mailbox_id: int, uids: Sequence[int]) -> dict[int, MailRow]:
        """The current rows of `uids` (missing ones were expunged)."""
        out: dict[int, MailRow] = {}
        async with self.reading("rows") as session:
            for chunk in _chunks(sorted(set(uids)), 500):
                found = await session.execute(
                    select(MailboxMessage, MailContent)
                    .join(MailContent, MailContent.id == MailboxMessage.content_id)
                    .where(MailboxMessage.mailbox_id == mailbox_id, MailboxMessage.uid.in_(chunk))
                )
                for message, content in found.all():
                    out[message.uid] = _row(message, content)
        return out

    async def claim_recent(self, mailbox_id: int) -> list[int]:
        """Take the \\Recent mark off the mailbox's new mails for one session (RFC 3501
        §2.3.2: exactly one session sees a mail as recent); their UIDs."""
        async with self.reading("claim_recent") as session:
            waiting = await session.scalar(
                select(func.count())
                .select_from(MailboxMessage)
                .where(MailboxMessage.mailbox_id == mailbox_id, MailboxMessage.recent.is_(True))
            )
        if not waiting:
            return []
        async with self.writing("claim_recent") as scope:
            result = await scope.session.execute(
                update(MailboxMessage)
                .where(MailboxMessage.mailbox_id == mailbox_id, MailboxMessage.recent.is_(True))
                .values(recent=False)
                .returning(MailboxMessage.uid)
            )
            return sorted(result.scalars().all())

    # ---- contents ---------------------------------------------------------------------

    async def load_meta(self, content_ids: Iterable[int]) -> dict[int, bytes]:
        """The decrypted descriptions of these contents, in one read."""
        wanted = sorted(set(content_ids))
        out: dict[int, bytes] = {}
        async with self.reading("load_meta") as session:
            for chunk in _chunks(wanted, 500):
                found = await session.execute(
                    select(MailContent.id, Blob)
                    .join(Blob, Blob.id == MailContent.meta_blob_id)
                    .where(MailContent.id.in_(chunk))
                )
                for content_id, blob in found.all():
                    out[content_id] = open_blob(self._cipher, blob)
        return out

    async def load_bytes(self, content_id: int) -> bytes:
        """The whole mail, decrypted; NoSuchMailbox-free: a missing content is a bug."""
        async with self.reading("load_bytes") as session:
            parts_json = await session.scalar(
                select(MailContent.parts).where(MailContent.id == content_id)
            )
            if parts_json is None:
                raise MailboxError("message no longer exists")
            ids: list[str] = json.loads(parts_json)
            blobs = {
                b.id: b for b in (await session.scalars(select(Blob).where(Blob.id.in_(ids)))).all()
            }
        return b"".join(open_blob(self._cipher, blobs[i]) for i in ids)

    async def content_facts(self, content_ids: Iterable[int]) -> dict[int, ContentFacts]:
        """Registry number and trace code behind each content (for the access trail)."""
        wanted = sorted(set(content_ids))
        out: dict[int, ContentFacts] = {}
        async with self.reading("content_facts") as session:
            for chunk in _chunks(wanted, 500):
                # A copy received from a federation peer has no message of ours:
                # its registry number and trace code are in inbound_copies.
                found = await session.execute(
                    select(
                        MailContent.id,
                        MailContent.kind,
                        func.coalesce(Message.registry_number, InboundCopy.registry_number),
                        func.coalesce(MessageCopy.trace_code, InboundCopy.trace_code),
                    )
                    .outerjoin(Message, Message.id == MailContent.message_id)
                    .outerjoin(MessageCopy, MessageCopy.id == MailContent.copy_id)
                    .outerjoin(InboundCopy, InboundCopy.content_id == MailContent.id)
                    .where(MailContent.id.in_(chunk))
                )
                for content_id, kind, registry, trace in found.all():
                    out[content_id] = ContentFacts(content_id, kind, registry, trace)
        return out

    # ---- changes by a client ------------------------------------------------------------

    async def append(
        self,
        mailbox_id: int,
        raw: bytes,
        meta: bytes,
        *,
        flags: frozenset[str] = frozenset(),
        internal_date: dt.datetime | None = None,
        recent: bool = True,
    ) -> int:
        """Store `raw` (kind "mail") at the end of the mailbox; its UID."""
        flags = check_flags(flags)
        async with self.writing("append") as scope:
            content_id = await insert_content(
                scope.session, self._cipher, kind="mail", data=[raw], meta=meta
            )
            uid = await append_in(
                scope,
                mailbox_id,
                content_id,
                flags=flags,
                internal_date=internal_date,
                recent=recent,
            )
        return uid

    async def copy(
        self, source_id: int, uids: Sequence[int], dest_id: int, *, move: bool, recent: bool
    ) -> list[tuple[int, int]]:
        """Copy (or move: copy, then expunge from the source, in one transaction) the
        mails `uids` that still exist; (source uid, new uid) pairs in UID order."""
        async with self.writing("move" if move else "copy") as scope:
            session = scope.session
            found = (
                await session.scalars(
                    select(MailboxMessage)
                    .where(MailboxMessage.mailbox_id == source_id, MailboxMessage.uid.in_(uids))
                    .order_by(MailboxMessage.uid)
                )
            ).all()
            if not found:
                return []
            first, modseq = await _allocate(session, dest_id, len(found))
            pairs = []
            rows = []
            for offset, message in enumerate(found):
                new_uid = first + offset
                pairs.append((message.uid, new_uid))
                rows.append(
                    {
                        "mailbox_id": dest_id,
                        "uid": new_uid,
                        "content_id": message.content_id,
                        "flags": message.flags,
                        "internal_date": message.internal_date,
                        "modseq": modseq,
                        "recent": recent,
                    }
                )
            await session.execute(insert(MailboxMessage), rows)
            scope.touched.add(dest_id)
            if move:
                await expunge_in(scope, source_id, [m.uid for m in found])
        return pairs

    async def store_flags(
        self, mailbox_id: int, uids: Sequence[int], flags: frozenset[str], mode: str
    ) -> dict[int, frozenset[str]]:
        """Change the flags of those of `uids` that exist; their new flags."""
        flags = check_flags(flags)
        out: dict[int, frozenset[str]] = {}
        async with self.writing("store_flags") as scope:
            session = scope.session
            found = (
                await session.scalars(
                    select(MailboxMessage).where(
                        MailboxMessage.mailbox_id == mailbox_id, MailboxMessage.uid.in_(uids)
                    )
                )
            ).all()
            changed = []
            for message in found:
                new = apply_flags(flags_of(message.flags), flags, mode)
                out[message.uid] = new
                if new != flags_of(message.flags):
                    changed.append((message, new))
            if changed:
                _, modseq = await _allocate(session, mailbox_id, 0)
                for message, new in changed:
                    message.flags = flags_text(new)
                    message.modseq = modseq
                scope.touched.add(mailbox_id)
        return out

    async def expunge(self, mailbox_id: int, uids: Sequence[int]) -> None:
        if not uids:
            return
        async with self.writing("expunge") as scope:
            await expunge_in(scope, mailbox_id, list(uids))

    async def deleted_uids(self, mailbox_id: int, uids: Sequence[int] | None) -> list[int]:
        """UIDs flagged \\Deleted (among `uids`, or all)."""
        async with self.reading("deleted_uids") as session:
            query = select(MailboxMessage.uid, MailboxMessage.flags).where(
                MailboxMessage.mailbox_id == mailbox_id
            )
            if uids is not None:
                query = query.where(MailboxMessage.uid.in_(uids))
            rows = (await session.execute(query)).all()
        return sorted(uid for uid, flags in rows if "\\Deleted" in flags_of(flags))


class WriteScope:
    """An open write transaction and the mailboxes it changed (to notify after commit)."""

    def __init__(self, store: MailboxStore) -> None:
        self.store = store
        self.session: AsyncSession
        self.touched: set[int] = set()


# ---- building blocks for other writers (delivery), inside their transaction ------------


def new_uid_validity() -> int:
    """A fresh non-zero 32-bit UIDVALIDITY (RFC 3501 §2.3.1.1)."""
    return secrets.randbelow(2**31 - 1) + 1


async def _insert_mailbox(
    session: AsyncSession, employee_id: int, name: str, special_use: str | None
) -> Mailbox:
    box = Mailbox(
        employee_id=employee_id,
        name=name,
        special_use=special_use,
        uid_validity=new_uid_validity(),
        next_uid=1,
        highest_modseq=0,
        subscribed=True,
        created_at=utcnow(),
    )
    session.add(box)
    await session.flush()
    return box


async def ensure_folders_in(session: AsyncSession, employee_id: int) -> dict[str, int]:
    """The standard folders' ids by name, creating the missing ones (in `session`)."""
    boxes = {
        name: box_id
        for name, box_id in (
            await session.execute(
                select(Mailbox.name, Mailbox.id).where(Mailbox.employee_id == employee_id)
            )
        ).all()
    }
    missing = [f for f in STANDARD_FOLDERS if f.name not in boxes]
    if missing:
        now = utcnow()
        rows = [
            {
                "employee_id": employee_id,
                "name": f.name,
                "special_use": f.special_use,
                "uid_validity": new_uid_validity(),
                "next_uid": 1,
                "highest_modseq": 0,
                "subscribed": True,
                "created_at": now,
            }
            for f in missing
        ]
        dialect = session.get_bind().dialect.name
        if dialect == "postgresql":
            stmt = postgresql.insert(Mailbox).on_conflict_do_nothing()
        else:
            stmt = sqlite.insert(Mailbox).on_conflict_do_nothing()  # type: ignore[assignment]
        await session.execute(stmt, rows)
        boxes = {
            name: box_id
            for name, box_id in (
                await session.execute(
                    select(Mailbox.name, Mailbox.id).where(Mailbox.employee_id == employee_id)
                )
            ).all()
        }
    return boxes


async def insert_content(
    session: AsyncSession,
    cipher: BlobCipher,
    *,
    kind: str,
    meta: bytes,
    data: Sequence[bytes] = (),
    blob_ids: Sequence[str] = (),
    size: int | None = None,
    message_id: int | None = None,
    copy_id: int | None = None,
) -> int:
    """A new content from fresh bytes (`data`, sealed here) or existing blobs."""
    ids = list(blob_ids)
    blobs = []
    for chunk in data:
        blob = seal_blob(cipher, chunk, purpose=PURPOSE_MAIL)
        blobs.append(blob)
        ids.append(blob.id)
    meta_blob = seal_blob(cipher, meta, purpose=PURPOSE_META)
    blobs.append(meta_blob)
    session.add_all(blobs)
    await session.flush()
    total = size if size is not None else sum(len(chunk) for chunk in data)
    result = await session.execute(
        insert(MailContent).returning(MailContent.id),
        [
            {
                "kind": kind,
                "size": total,
                "parts": json.dumps(ids),
                "meta_blob_id": meta_blob.id,
                "message_id": message_id,
                "copy_id": copy_id,
                "created_at": utcnow(),
            }
        ],
    )
    return int(result.scalar_one())


async def _allocate(session: AsyncSession, mailbox_id: int, count: int) -> tuple[int, int]:
    """Reserve `count` UIDs and the next modseq: (first uid, modseq)."""
    result = await session.execute(
        update(Mailbox)
        .where(Mailbox.id == mailbox_id)
        .values(
            next_uid=Mailbox.next_uid + count,
            highest_modseq=Mailbox.highest_modseq + 1,
        )
        .returning(Mailbox.next_uid, Mailbox.highest_modseq)
    )
    row = result.first()
    if row is None:
        raise NoSuchMailbox("no such mailbox")
    next_uid, modseq = row
    return int(next_uid) - count, int(modseq)


async def append_in(
    scope: WriteScope,
    mailbox_id: int,
    content_id: int,
    *,
    flags: frozenset[str] = frozenset(),
    internal_date: dt.datetime | None = None,
    recent: bool = True,
) -> int:
    """Put a stored content at the end of a mailbox inside `scope`; its UID."""
    uid, modseq = await _allocate(scope.session, mailbox_id, 1)
    await scope.session.execute(
        insert(MailboxMessage),
        [
            {
                "mailbox_id": mailbox_id,
                "uid": uid,
                "content_id": content_id,
                "flags": flags_text(flags),
                "internal_date": format_time(internal_date or dt.datetime.now(dt.UTC)),
                "modseq": modseq,
                "recent": recent,
            }
        ],
    )
    scope.touched.add(mailbox_id)
    return uid


async def expunge_in(scope: WriteScope, mailbox_id: int, uids: list[int]) -> None:
    session = scope.session
    present = (
        await session.scalars(
            select(MailboxMessage.uid).where(
                and_(MailboxMessage.mailbox_id == mailbox_id, MailboxMessage.uid.in_(uids))
            )
        )
    ).all()
    if not present:
        return
    _, modseq = await _allocate(session, mailbox_id, 0)
    await session.execute(
        delete(MailboxMessage).where(
            MailboxMessage.mailbox_id == mailbox_id, MailboxMessage.uid.in_(present)
        )
    )
    await session.execute(
        insert(MailboxExpunge),
        [{"mailbox_id": mailbox_id, "uid": uid, "modseq": modseq} for uid in present],
    )
    scope.touched.add(mailbox_id)


def _info(box: Mailbox) -> MailboxInfo:
    return MailboxInfo(box.id, box.name, box.special_use, box.uid_validity, box.subscribed)


def _chunks(items: Sequence[int], size: int) -> Iterable[Sequence[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


__all__ = [
    "INBOX",
    "Changes",
    "ContentFacts",
    "MailRow",
    "MailboxError",
    "MailboxExists",
    "MailboxInfo",
    "MailboxNameError",
    "MailboxStatus",
    "MailboxStore",
    "NoSuchMailbox",
    "StoreUnavailable",
    "WriteScope",
    "append_in",
    "ensure_folders_in",
    "insert_content",
]

"""An employee's mailboxes for pymap: the folder set and one selected mailbox.

Owns: `MailboxSet` (LIST, CREATE, DELETE, RENAME, SUBSCRIBE) and `MailboxData`
(pymap's `MailboxDataInterface`: change feed and IDLE wake-ups, APPEND, COPY,
MOVE, flags, EXPUNGE, snapshots), each call one store call. Must not: know SQL.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Iterable, Sequence

from pymap.concurrent import Event
from pymap.exceptions import MailboxNotFound
from pymap.flags import FlagOp
from pymap.interfaces.message import CachedMessage
from pymap.listtree import ListTree
from pymap.mailbox import MailboxSnapshot
from pymap.parsing.message import AppendMessage
from pymap.parsing.specials import ObjectId, SequenceSet
from pymap.parsing.specials.flag import Flag, Recent, get_system_flags
from pymap.selected import SelectedMailbox, SelectedSet

from gateway.imap.context import PARSE_IN_THREAD_BYTES, ImapContext, flag_names, guard
from gateway.imap.describe import Description, describe
from gateway.imap.message import Message
from gateway.store.mailbox import folders
from gateway.store.mailbox.notify import POLL_SECONDS
from gateway.store.mailbox.store import (
    MailboxExists,
    MailboxInfo,
    MailRow,
    NoSuchMailbox,
)


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
                changes = await guard(self._store.changes(self.info.id, since))
                if since is not None and not changes.updated and not changes.expunged:
                    await _first_of(wait_on.wait(), woken.wait(), seconds=POLL_SECONDS)
                    changes = await guard(self._store.changes(self.info.id, since))
        else:
            changes = await guard(self._store.changes(self.info.id, since))
        selected.mod_sequence = changes.highest_modseq
        selected.add_updates([self._message(row) for row in changes.updated], changes.expunged)
        return selected

    async def append(self, append_msg: AppendMessage, *, recent: bool = False) -> Message:
        raw = bytes(append_msg.literal)
        meta = await describe_off_loop(raw)
        flags = flag_names(append_msg.flag_set) & flag_names(self.permanent_flags)
        when = append_msg.when
        if when is not None and when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        uid = await guard(
            self._store.append(
                self.info.id, raw, meta, flags=flags, internal_date=when, recent=recent
            )
        )
        rows = await guard(self._store.rows(self.info.id, [uid]))
        return self._message(rows[uid])

    async def copy(self, uid: int, destination: MailboxData, *, recent: bool = False) -> int | None:
        pairs = await guard(
            self._store.copy(self.info.id, [uid], destination.info.id, move=False, recent=recent)
        )
        return pairs[0][1] if pairs else None

    async def move(self, uid: int, destination: MailboxData, *, recent: bool = False) -> int | None:
        pairs = await guard(
            self._store.copy(self.info.id, [uid], destination.info.id, move=True, recent=recent)
        )
        return pairs[0][1] if pairs else None

    async def get(self, uid: int, cached_msg: CachedMessage) -> Message:
        rows = await guard(self._store.rows(self.info.id, [uid]))
        row = rows.get(uid)
        if row is None:
            return Message.expunged_copy(cached_msg)
        return self._message(row)

    async def update(
        self, uid: int, cached_msg: CachedMessage, flag_set: frozenset[Flag], mode: FlagOp
    ) -> Message:
        await guard(
            self._store.store_flags(self.info.id, [uid], flag_names(flag_set), FLAG_MODES[mode])
        )
        return await self.get(uid, cached_msg)

    async def delete(self, uids: Iterable[int]) -> None:
        await guard(self._store.expunge(self.info.id, list(uids)))

    async def claim_recent(self, selected: SelectedMailbox) -> None:
        for uid in await guard(self._store.claim_recent(self.info.id)):
            selected.session_flags.add_recent(uid)

    async def cleanup(self) -> None:
        return None

    async def snapshot(self) -> MailboxSnapshot:
        status = await guard(self._store.status(self.info.id))
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
        rows = await guard(self._store.rows(self.info.id, [c.uid for _, c in pairs]))
        for seq, cached in pairs:
            row = rows.get(cached.uid)
            yield seq, (self._message(row) if row else Message.expunged_copy(cached))

    async def find_deleted(self, seq_set: SequenceSet, selected: SelectedMailbox) -> Sequence[int]:
        uids = [uid for _, uid in selected.messages.get_uids(seq_set)]
        return await guard(self._store.deleted_uids(self.info.id, uids))


FLAG_MODES = {FlagOp.ADD: "add", FlagOp.DELETE: "remove", FlagOp.REPLACE: "replace"}


async def describe_off_loop(raw: bytes) -> bytes:
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
            await guard(self._store.set_subscribed(self.employee_id, name, subscribed))
        except NoSuchMailbox:
            # pymap's SUBSCRIBE does not translate KeyError: answer NO here.
            raise MailboxNotFound(name) from None

    async def _infos(self) -> list[MailboxInfo]:
        return await guard(self._store.list_mailboxes(self.employee_id))

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
            info = await guard(self._store.get_mailbox(self.employee_id, name))
        except NoSuchMailbox:
            raise KeyError(name) from None
        return MailboxData(info, self._ctx)

    async def add_mailbox(self, name: str) -> ObjectId:
        try:
            info = await guard(self._store.create_mailbox(self.employee_id, name))
        except MailboxExists:
            raise ValueError(name) from None
        return ObjectId(b"M%d" % info.id)

    async def delete_mailbox(self, name: str) -> None:
        try:
            await guard(self._store.delete_mailbox(self.employee_id, name))
        except NoSuchMailbox:
            raise KeyError(name) from None

    async def rename_mailbox(self, before: str, after: str) -> None:
        try:
            await guard(self._store.rename_mailbox(self.employee_id, before, after))
        except NoSuchMailbox:
            raise KeyError(before) from None
        except MailboxExists:
            raise ValueError(after) from None

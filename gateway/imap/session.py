"""One IMAP session for pymap: batched FETCH, STORE, COPY and MOVE, and the access trail.

Owns: `Session` (pymap's `BaseSession`): each command reads or writes the store
once, not mail by mail, and a FETCH that opens a body records one
"message.access" event per official mail *before* any byte is sent. Must not:
read sockets or know SQL.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from pymap.backend.session import BaseSession
from pymap.config import IMAPConfig
from pymap.context import current_command
from pymap.exceptions import MailboxConflict
from pymap.flags import FlagOp
from pymap.parsing.command.select import FetchCommand
from pymap.parsing.response.code import CopyUid
from pymap.parsing.specials import ObjectId, SequenceSet
from pymap.parsing.specials.flag import Flag
from pymap.selected import SelectedMailbox

from gateway.imap.access import AccessTarget, body_items
from gateway.imap.context import (
    ImapContext,
    Refused,
    Unavailable,
    client_address,
    flag_names,
    guard,
)
from gateway.imap.describe import read_description
from gateway.imap.mailbox import FLAG_MODES, MailboxData, MailboxSet
from gateway.imap.message import Message
from gateway.store.mailbox.store import (
    MailRow,
    StoreUnavailable,
)

if TYPE_CHECKING:
    from gateway.imap.login import Identity


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
        rows = await guard(store.rows(mbx.info.id, uids))
        command = current_command.get()
        items = body_items(command.attributes) if isinstance(command, FetchCommand) else []
        if items:  # recorded before anything is changed or sent
            await self._record_access(mbx, sorted(rows.values(), key=lambda r: r.uid), items)
        if set_seen and rows:
            await guard(store.store_flags(mbx.info.id, uids, frozenset({"\\Seen"}), "add"))
            rows = await guard(store.rows(mbx.info.id, uids))
        metas = await guard(store.load_meta({r.content_id for r in rows.values()}))
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
        facts = await guard(self._ctx.store.content_facts({m.content_id for m in official}))
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
        await guard(store.store_flags(mbx.info.id, uids, flag_names(permanent), FLAG_MODES[mode]))
        rows = await guard(store.rows(mbx.info.id, uids))
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
        pairs = await guard(
            self._ctx.store.copy(
                mbx.info.id, uids, dest.info.id, move=move, recent=not dest_selected
            )
        )
        if dest_selected:
            for _, new_uid in pairs:
                dest_selected.session_flags.add_recent(new_uid)
        copy_uid = CopyUid(dest.uid_validity, pairs) if pairs else None
        return copy_uid, await mbx.update_selected(selected)

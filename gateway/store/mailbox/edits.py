"""A client's changes to mails: append, copy and move, flags, expunge.

Owns: those commands as one transaction each, every change with the next
modseq of its mailbox (COPY/MOVE reference the same content, never copy bytes).
Must not: check who may change what (callers pass their mailbox ids).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import insert, select

from gateway.store.mailbox.base import StoreBase
from gateway.store.mailbox.records import apply_flags, check_flags, flags_of, flags_text
from gateway.store.mailbox.writes import allocate, append_in, expunge_in, insert_content
from gateway.store.models import MailboxMessage


class MailEdits(StoreBase):
    """A client's changes to mails; each public coroutine is one transaction."""

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
            first, modseq = await allocate(session, dest_id, len(found))
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
                _, modseq = await allocate(session, mailbox_id, 0)
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

"""A mailbox's state and its change feed: STATUS counts, `changes(since)`, rows, \\Recent.

Owns: reading what a session must learn (mails changed and UIDs expunged after
a modseq) and handing out \\Recent to exactly one session. Must not: change
flags or contents.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select, update

from gateway.store.mailbox.base import StoreBase
from gateway.store.mailbox.records import (
    MAIL_ROW_COLUMNS,
    Changes,
    MailboxStatus,
    MailRow,
    NoSuchMailbox,
    chunks,
    flags_of,
    row_of,
)
from gateway.store.models import Mailbox, MailboxExpunge, MailboxMessage, MailContent
from gateway.store.queue import skip_locked


class ChangeFeed(StoreBase):
    """A mailbox's state and what changed in it."""

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
            highest = await session.scalar(
                select(Mailbox.highest_modseq).where(Mailbox.id == mailbox_id)
            )
            if highest is None:
                raise NoSuchMailbox("no such mailbox")
            query = (
                select(*MAIL_ROW_COLUMNS)
                .join(MailContent, MailContent.id == MailboxMessage.content_id)
                .where(MailboxMessage.mailbox_id == mailbox_id)
                .order_by(MailboxMessage.uid)
            )
            expunged: list[int] = []
            if since is not None:
                if since >= highest:
                    return Changes(highest, [], [])
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
            rows = [row_of(r) for r in (await session.execute(query)).all()]
        return Changes(highest, rows, expunged)

    async def rows(self, mailbox_id: int, uids: Sequence[int]) -> dict[int, MailRow]:
        """The current rows of `uids` (missing ones were expunged)."""
        wanted = sorted(set(uids))
        out: dict[int, MailRow] = {}
        if not wanted:
            return out
        query = select(*MAIL_ROW_COLUMNS).join(
            MailContent, MailContent.id == MailboxMessage.content_id
        )
        async with self.reading("rows") as session:
            if wanted[-1] - wanted[0] < 2 * len(wanted) + 64:
                # A dense set (1:*, a page of a folder): one range read, filtered here.
                found = await session.execute(
                    query.where(
                        MailboxMessage.mailbox_id == mailbox_id,
                        MailboxMessage.uid.between(wanted[0], wanted[-1]),
                    )
                )
                chosen = set(wanted)
                for values in found.all():
                    if values[0] in chosen:
                        out[values[0]] = row_of(values)
                return out
            for chunk in chunks(wanted, 500):
                found = await session.execute(
                    query.where(
                        MailboxMessage.mailbox_id == mailbox_id, MailboxMessage.uid.in_(chunk)
                    )
                )
                for values in found.all():
                    out[values[0]] = row_of(values)
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
            recent = (MailboxMessage.mailbox_id == mailbox_id, MailboxMessage.recent.is_(True))
            if self._postgres:  # another session's claim in flight: skip, never wait
                locked = skip_locked(
                    select(MailboxMessage.id).where(*recent), scope.session, MailboxMessage
                )
                rows = update(MailboxMessage).where(MailboxMessage.id.in_(locked), *recent)
            else:
                rows = update(MailboxMessage).where(*recent)
            result = await scope.session.execute(
                rows.values(recent=False).returning(MailboxMessage.uid)
            )
            return sorted(result.scalars().all())

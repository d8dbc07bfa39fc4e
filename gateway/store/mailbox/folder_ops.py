"""Folders of an employee's mailboxes: list, get, create, delete, rename, subscribe.

Owns: the folder operations of RFC 3501 §6.3 over `mailboxes` (missing parent
levels created, children moving along, standard folders protected). Must not:
touch the mails inside beyond deleting them with their folder.
"""

from __future__ import annotations

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError

from gateway.store.mailbox.base import StoreBase
from gateway.store.mailbox.folders import (
    DELIMITER,
    STANDARD_FOLDERS,
    check_name,
    is_protected,
    normalize,
)
from gateway.store.mailbox.records import (
    MailboxError,
    MailboxExists,
    MailboxInfo,
    NoSuchMailbox,
    mailbox_info,
)
from gateway.store.mailbox.writes import ensure_folders_in, insert_mailbox, new_uid_validity
from gateway.store.models import Mailbox, MailboxExpunge, MailboxMessage


class FolderOps(StoreBase):
    """Folder operations; each public coroutine is one transaction or one read."""

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
        return [mailbox_info(m) for m in rows]

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
        return mailbox_info(found)

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
                        created = await insert_mailbox(session, employee_id, path, None)
                assert created is not None
                return mailbox_info(created)
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
                        await insert_mailbox(session, employee_id, parent, None)
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

"""Writing mailboxes inside a caller's transaction: UIDs, contents, appends, expunges.

Owns: the building blocks that every writer (client commands, local delivery,
federation filing) uses inside its own transaction: `WriteScope`, the UID and
modseq allocation (one UPDATE ... RETURNING), folders, contents made of sealed
blobs, appends and expunges. Must not: open or commit transactions itself.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import and_, delete, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.store.blobs import BlobCipher, seal_blob, store_outside
from gateway.store.db import utcnow
from gateway.store.mailbox.folders import STANDARD_FOLDERS
from gateway.store.mailbox.records import NoSuchMailbox, flags_text, format_time
from gateway.store.models import Blob, Mailbox, MailboxExpunge, MailboxMessage, MailContent

if TYPE_CHECKING:
    from gateway.store.mailbox.base import StoreBase

PURPOSE_MAIL = "mailbox-mail"
PURPOSE_META = "mailbox-meta"


class WriteScope:
    """An open write transaction and the mailboxes it changed (to notify after commit)."""

    def __init__(self, store: StoreBase) -> None:
        self.store = store
        self.session: AsyncSession
        self.touched: set[int] = set()


# ---- building blocks for other writers (delivery), inside their transaction ------------


def new_uid_validity() -> int:
    """A fresh non-zero 32-bit UIDVALIDITY (RFC 3501 §2.3.1.1)."""
    return secrets.randbelow(2**31 - 1) + 1


async def insert_mailbox(
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


async def ensure_folders_many(
    session: AsyncSession, employee_ids: set[int]
) -> dict[int, dict[str, int]]:
    """`ensure_folders_in` for several employees: one SELECT when every folder exists."""
    if not employee_ids:
        return {}
    found: dict[int, dict[str, int]] = {employee_id: {} for employee_id in employee_ids}
    rows = await session.execute(
        select(Mailbox.employee_id, Mailbox.name, Mailbox.id).where(
            Mailbox.employee_id.in_(sorted(employee_ids))
        )
    )
    for employee_id, name, box_id in rows.all():
        found[int(employee_id)][name] = box_id
    for employee_id, boxes in found.items():
        if any(f.name not in boxes for f in STANDARD_FOLDERS):
            found[employee_id] = await ensure_folders_in(session, employee_id)
    return found


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
    await store_outside(cipher, blobs)
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


async def lock_mailboxes(session: AsyncSession, mailbox_ids: Sequence[int]) -> None:
    """Lock the mailbox rows of `mailbox_ids` in id order (PostgreSQL).

    A transaction that allocates UIDs in several mailboxes takes their rows one by
    one; two nodes taking the same rows in different orders would deadlock. Locking
    them all first, always in id order, makes every such transaction wait in line
    instead. SQLite has one writer at a time and needs nothing."""
    if mailbox_ids and session.get_bind().dialect.name == "postgresql":
        ids = sorted(set(mailbox_ids))
        await session.execute(
            select(Mailbox.id).where(Mailbox.id.in_(ids)).order_by(Mailbox.id).with_for_update()
        )


async def allocate(session: AsyncSession, mailbox_id: int, count: int) -> tuple[int, int]:
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


async def allocate_many(
    session: AsyncSession, counts: dict[int, int]
) -> dict[int, tuple[int, int]]:
    """`allocate` for several mailboxes, one UPDATE per distinct count (a circular
    files one copy into each of many INBOXes: one statement for all of them)."""
    by_count: dict[int, list[int]] = {}
    for mailbox_id, count in counts.items():
        by_count.setdefault(count, []).append(mailbox_id)
    out: dict[int, tuple[int, int]] = {}
    for count, ids in by_count.items():
        result = await session.execute(
            update(Mailbox)
            .where(Mailbox.id.in_(ids))
            .values(
                next_uid=Mailbox.next_uid + count,
                highest_modseq=Mailbox.highest_modseq + 1,
            )
            .returning(Mailbox.id, Mailbox.next_uid, Mailbox.highest_modseq)
            .execution_options(synchronize_session=False)
        )
        for box_id, next_uid, modseq in result.all():
            out[int(box_id)] = (int(next_uid) - count, int(modseq))
    if len(out) != len(counts):
        raise NoSuchMailbox("no such mailbox")
    return out


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
    uid, modseq = await allocate(scope.session, mailbox_id, 1)
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


@dataclass(frozen=True)
class NewCopy:
    """A delivered copy to file: its stored blobs, description and mailbox."""

    mailbox_id: int
    meta: bytes
    blob_ids: Sequence[str]
    size: int
    message_id: int | None
    copy_id: int | None


_BLOB_FIELDS = [c.key for c in Blob.__table__.columns]  # a sealed row's values, for Core


async def file_copies_in(
    scope: WriteScope, cipher: BlobCipher, copies: Sequence[NewCopy]
) -> list[int]:
    """Contents and mailbox rows of `copies` in a few statements for all of them (the
    descriptions, the contents, the UIDs of each mailbox, the rows), instead of four
    per copy as `insert_content` + `append_in`; their UIDs, in order."""
    if not copies:
        return []
    session = scope.session
    now = utcnow()
    metas = [seal_blob(cipher, copy.meta, purpose=PURPOSE_META) for copy in copies]
    await session.execute(
        insert(Blob), [{name: getattr(b, name) for name in _BLOB_FIELDS} for b in metas]
    )
    contents = await session.execute(
        insert(MailContent).returning(MailContent.id, sort_by_parameter_order=True),
        [
            {
                "kind": "copy",
                "size": copy.size,
                "parts": json.dumps(list(copy.blob_ids)),
                "meta_blob_id": meta.id,
                "message_id": copy.message_id,
                "copy_id": copy.copy_id,
                "created_at": now,
            }
            for copy, meta in zip(copies, metas, strict=True)
        ],
    )
    content_ids = [int(row[0]) for row in contents.all()]
    per_box: dict[int, list[int]] = {}
    for index, copy in enumerate(copies):
        per_box.setdefault(copy.mailbox_id, []).append(index)
    uids = [0] * len(copies)
    rows = []
    internal_date = format_time(dt.datetime.now(dt.UTC))
    await lock_mailboxes(session, list(per_box))  # id order: see lock_mailboxes
    reserved = await allocate_many(session, {box: len(ix) for box, ix in per_box.items()})
    for mailbox_id, indexes in sorted(per_box.items()):
        first, modseq = reserved[mailbox_id]
        for offset, index in enumerate(indexes):
            uids[index] = first + offset
            rows.append(
                {
                    "mailbox_id": mailbox_id,
                    "uid": first + offset,
                    "content_id": content_ids[index],
                    "flags": "",
                    "internal_date": internal_date,
                    "modseq": modseq,
                    "recent": True,
                }
            )
        scope.touched.add(mailbox_id)
    await session.execute(insert(MailboxMessage), rows)
    return uids


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
    _, modseq = await allocate(session, mailbox_id, 0)
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

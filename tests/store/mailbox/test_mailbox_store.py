"""MailboxStore on SQLite and PostgreSQL: folders, UIDs, flags, changes, copies, encryption."""

from __future__ import annotations

import asyncio
import datetime as dt
import glob
import os
import secrets
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, func, insert, select, text
from sqlalchemy.engine import make_url

from gateway.store import migrate
from gateway.store.blobs import BlobCipher
from gateway.store.db import create_engine, transaction, utcnow
from gateway.store.mailbox.folders import STANDARD_FOLDERS, MailboxNameError
from gateway.store.mailbox.notify import MailboxNotifier
from gateway.store.mailbox.store import (
    MAX_KEYWORDS,
    Changes,
    MailboxError,
    MailboxExists,
    MailboxStore,
    NoSuchMailbox,
    StoreUnavailable,
    check_flags,
    insert_content,
)
from gateway.store.models import Blob, Mailbox, MailboxMessage, MailContent
from testkit.mailbox import WAIT, MailEnv, inbox, mail, mail_env

STANDARD = {f.name: f.special_use for f in STANDARD_FOLDERS}


async def count(env: MailEnv, model: Any) -> int:
    async with env.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


# ---- folders ---------------------------------------------------------------------------


async def test_ensure_folders_creates_the_standard_set_once(db_url: str) -> None:
    async with mail_env(db_url) as env:
        assert await env.store.list_mailboxes(env.alice) == []
        await env.store.ensure_folders(env.alice)
        boxes = await env.store.list_mailboxes(env.alice)
        assert {b.name: b.special_use for b in boxes} == STANDARD
        assert [b.name for b in boxes] == sorted(STANDARD)
        assert all(b.subscribed and b.uid_validity > 0 for b in boxes)
        assert len({b.id for b in boxes}) == 5

        await env.store.ensure_folders(env.alice)  # idempotent
        again = await env.store.list_mailboxes(env.alice)
        assert again == boxes
        assert await count(env, Mailbox) == 5


async def test_concurrent_ensure_folders_create_each_folder_once(db_url: str) -> None:
    async with mail_env(db_url) as env:
        await asyncio.wait_for(
            asyncio.gather(*(env.store.ensure_folders(e) for e in [env.alice] * 8 + [env.bob] * 8)),
            WAIT * 2,
        )
        for employee in (env.alice, env.bob):
            boxes = await env.store.list_mailboxes(employee)
            assert {b.name: b.special_use for b in boxes} == STANDARD
        assert await count(env, Mailbox) == 10


async def test_ensure_folders_adds_only_missing_folders(db_url: str) -> None:
    async with mail_env(db_url) as env:
        await env.store.ensure_folders(env.alice)
        before = {b.name: b for b in await env.store.list_mailboxes(env.alice)}
        async with transaction(env.sessions) as session:
            await session.execute(delete(Mailbox).where(Mailbox.id == before["Receipts"].id))
        await env.store.ensure_folders(env.alice)
        after = {b.name: b for b in await env.store.list_mailboxes(env.alice)}
        assert set(after) == set(STANDARD)
        assert after["INBOX"] == before["INBOX"]
        assert after["Sent"] == before["Sent"]
        assert after["Receipts"].special_use is None and after["Receipts"].uid_validity > 0


async def test_get_mailbox_is_inbox_case_insensitive(db_url: str) -> None:
    async with mail_env(db_url) as env:
        box = await inbox(env)
        assert (await env.store.get_mailbox(env.alice, "inbox")).id == box
        assert (await env.store.get_mailbox(env.alice, "InBox")).id == box
        with pytest.raises(NoSuchMailbox):
            await env.store.get_mailbox(env.alice, "sent")  # other names are case-sensitive
        with pytest.raises(NoSuchMailbox):
            await env.store.get_mailbox(env.alice, "Nope")


async def test_create_mailbox_creates_missing_parents(db_url: str) -> None:
    async with mail_env(db_url) as env:
        await env.store.ensure_folders(env.alice)
        created = await env.store.create_mailbox(env.alice, "A/B/C")
        assert created.name == "A/B/C" and created.special_use is None
        assert created.uid_validity > 0 and created.subscribed
        names = {b.name for b in await env.store.list_mailboxes(env.alice)}
        assert {"A", "A/B", "A/B/C"} <= names
        assert (await env.store.get_mailbox(env.alice, "A/B/C")) == created

        sibling = await env.store.create_mailbox(env.alice, "A/D")  # parent exists already
        assert sibling.name == "A/D"
        child = await env.store.create_mailbox(env.alice, "inbox/Projects")
        assert child.name == "INBOX/Projects"
        trailing = await env.store.create_mailbox(env.alice, "Trailing/")
        assert trailing.name == "Trailing"
        arabic = await env.store.create_mailbox(env.alice, "المراسلات/الواردة")
        assert (await env.store.get_mailbox(env.alice, "المراسلات/الواردة")) == arabic
        assert (await env.store.get_mailbox(env.alice, "المراسلات")).name == "المراسلات"


async def test_create_mailbox_refuses_duplicates_and_bad_names(db_url: str) -> None:
    async with mail_env(db_url) as env:
        await env.store.ensure_folders(env.alice)
        await env.store.create_mailbox(env.alice, "A/B")
        for name in ("A/B", "A", "INBOX", "inbox", "Sent"):
            with pytest.raises(MailboxExists):
                await env.store.create_mailbox(env.alice, name)
        for bad in ("", "A//B", "/A", "A\r\nB", "A\x00", "A*", "A%B", "x" * 300):
            with pytest.raises(MailboxNameError):
                await env.store.create_mailbox(env.alice, bad)
        assert len(await env.store.list_mailboxes(env.alice)) == 5 + 2
        # the same name is free for another employee
        assert (await env.store.create_mailbox(env.bob, "A/B")).name == "A/B"


async def test_rename_moves_children_and_gives_new_uid_validity(db_url: str) -> None:
    async with mail_env(db_url) as env:
        await env.store.ensure_folders(env.alice)
        await env.store.create_mailbox(env.alice, "Old/Child/Grand")
        await env.store.create_mailbox(env.alice, "Older")  # shares a prefix, not a child
        before = {b.name: b for b in await env.store.list_mailboxes(env.alice)}
        uid = await env.store.append(before["Old/Child"].id, mail("keep"), b"meta")

        await env.store.rename_mailbox(env.alice, "Old", "New")
        after = {b.name: b for b in await env.store.list_mailboxes(env.alice)}
        assert "Old" not in after and "Old/Child" not in after
        for old, new in (
            ("Old", "New"),
            ("Old/Child", "New/Child"),
            ("Old/Child/Grand", "New/Child/Grand"),
        ):
            assert after[new].id == before[old].id
            assert after[new].uid_validity != before[old].uid_validity
            assert after[new].uid_validity > 0
        assert after["Older"] == before["Older"]
        rows = await env.store.rows(after["New/Child"].id, [uid])
        assert list(rows) == [uid]

        with pytest.raises(NoSuchMailbox):
            await env.store.rename_mailbox(env.alice, "Old", "Other")
        with pytest.raises(MailboxExists):
            await env.store.rename_mailbox(env.alice, "New", "Older")
        with pytest.raises(MailboxNameError):
            await env.store.rename_mailbox(env.alice, "New", "Bad\nName")


async def test_standard_folders_cannot_be_renamed_or_deleted(db_url: str) -> None:
    async with mail_env(db_url) as env:
        await env.store.ensure_folders(env.alice)
        await env.store.create_mailbox(env.alice, "Mine")
        before = await env.store.list_mailboxes(env.alice)
        for name in ("INBOX", "inbox", "Sent", "Drafts", "Trash", "Receipts"):
            with pytest.raises(MailboxError):
                await env.store.rename_mailbox(env.alice, name, "Elsewhere")
            with pytest.raises(MailboxError):
                await env.store.rename_mailbox(env.alice, "Mine", name)
            with pytest.raises(MailboxError):
                await env.store.delete_mailbox(env.alice, name)
        assert await env.store.list_mailboxes(env.alice) == before  # same ids and UIDVALIDITY
        assert {b.name for b in before} == {*STANDARD, "Mine"}


async def test_delete_mailbox(db_url: str) -> None:
    async with mail_env(db_url) as env:
        await env.store.ensure_folders(env.alice)
        await env.store.create_mailbox(env.alice, "P/Q")
        with pytest.raises(MailboxError, match="children"):
            await env.store.delete_mailbox(env.alice, "P")
        q = await env.store.get_mailbox(env.alice, "P/Q")
        uids = [await env.store.append(q.id, mail(str(i)), b"m") for i in range(2)]
        await env.store.expunge(q.id, uids[:1])
        await env.store.delete_mailbox(env.alice, "P/Q")
        await env.store.delete_mailbox(env.alice, "P")
        assert {b.name for b in await env.store.list_mailboxes(env.alice)} == set(STANDARD)
        async with env.sessions() as session:
            left = await session.scalar(
                select(func.count())
                .select_from(MailboxMessage)
                .where(MailboxMessage.mailbox_id == q.id)
            )
        assert left == 0
        with pytest.raises(NoSuchMailbox):
            await env.store.delete_mailbox(env.alice, "P")
        with pytest.raises(NoSuchMailbox):
            await env.store.status(q.id)


async def test_delete_mailbox_is_not_blocked_by_a_differently_cased_name(
    db_url: str, request: pytest.FixtureRequest
) -> None:
    async with mail_env(db_url) as env:
        await env.store.create_mailbox(env.alice, "Projects")
        await env.store.create_mailbox(env.alice, "projects/x")  # names are case-sensitive
        await env.store.delete_mailbox(env.alice, "Projects")
        names = {b.name for b in await env.store.list_mailboxes(env.alice)}
        assert names == {"projects", "projects/x"}


async def test_set_subscribed(db_url: str) -> None:
    async with mail_env(db_url) as env:
        await env.store.ensure_folders(env.alice)
        await env.store.set_subscribed(env.alice, "Trash", False)
        assert not (await env.store.get_mailbox(env.alice, "Trash")).subscribed
        await env.store.set_subscribed(env.alice, "inbox", False)
        assert not (await env.store.get_mailbox(env.alice, "INBOX")).subscribed
        await env.store.set_subscribed(env.alice, "Trash", True)
        assert (await env.store.get_mailbox(env.alice, "Trash")).subscribed
        with pytest.raises(NoSuchMailbox):
            await env.store.set_subscribed(env.alice, "Unknown", True)
        with pytest.raises(NoSuchMailbox):
            await env.store.set_subscribed(env.bob, "Trash", True)  # Bob has no folders yet


async def test_one_employee_cannot_see_anothers_mailboxes(db_url: str) -> None:
    async with mail_env(db_url) as env:
        await env.store.ensure_folders(env.alice)
        await env.store.create_mailbox(env.alice, "Private/Secret")
        alice_ids = {b.id for b in await env.store.list_mailboxes(env.alice)}
        assert await env.store.list_mailboxes(env.bob) == []
        with pytest.raises(NoSuchMailbox):
            await env.store.get_mailbox(env.bob, "Private/Secret")
        with pytest.raises(NoSuchMailbox):
            await env.store.get_mailbox(env.bob, "INBOX")
        await env.store.ensure_folders(env.bob)
        bob_boxes = await env.store.list_mailboxes(env.bob)
        assert {b.name for b in bob_boxes} == set(STANDARD)
        assert alice_ids.isdisjoint(b.id for b in bob_boxes)
        assert (await env.store.get_mailbox(env.bob, "INBOX")).id not in alice_ids
        with pytest.raises(NoSuchMailbox):
            await env.store.delete_mailbox(env.bob, "Private/Secret")
        with pytest.raises(NoSuchMailbox):
            await env.store.rename_mailbox(env.bob, "Private", "Mine")
        assert {b.id for b in await env.store.list_mailboxes(env.alice)} == alice_ids


# ---- UIDs, status, changes ---------------------------------------------------------------


async def test_append_gives_ascending_uids_and_status(db_url: str) -> None:
    async with mail_env(db_url) as env:
        box = await inbox(env)
        empty = await env.store.status(box)
        assert (empty.exists, empty.recent, empty.unseen, empty.first_unseen) == (0, 0, 0, None)
        assert empty.next_uid == 1 and empty.uid_validity > 0 and empty.highest_modseq == 0

        uids = [await env.store.append(box, mail(str(i)), b"m") for i in range(4)]
        assert uids == [1, 2, 3, 4]
        status = await env.store.status(box)
        assert (status.exists, status.recent, status.unseen, status.first_unseen) == (4, 4, 4, 1)
        assert status.next_uid == 5 and status.uid_validity == empty.uid_validity

        await env.store.store_flags(box, [1, 2], frozenset({"\\Seen"}), "add")
        await env.store.expunge(box, [1])
        # left: uid 2 (seen) = seq 1, uid 3 = seq 2, uid 4 = seq 3
        status = await env.store.status(box)
        assert (status.exists, status.unseen, status.first_unseen) == (3, 2, 2)
        assert status.next_uid == 5 and status.uid_validity == empty.uid_validity

        assert await env.store.append(box, mail("after"), b"m") == 5  # never reused
        seen = await env.store.append(
            box, mail("seen"), b"m", flags=frozenset({"\\Seen"}), recent=False
        )
        assert seen == 6
        status = await env.store.status(box)
        assert (status.exists, status.recent, status.unseen) == (5, 4, 3)
        with pytest.raises(NoSuchMailbox):
            await env.store.status(box + 1000)


async def test_thirty_concurrent_appends_get_distinct_gap_free_uids(db_url: str) -> None:
    async with mail_env(db_url) as env:
        box = await inbox(env)
        validity = (await env.store.status(box)).uid_validity
        uids = await asyncio.wait_for(
            asyncio.gather(*(env.store.append(box, mail(str(i)), b"m") for i in range(30))),
            WAIT * 6,
        )
        assert sorted(uids) == list(range(1, 31))
        status = await env.store.status(box)
        assert status.exists == 30 and status.next_uid == 31
        assert status.uid_validity == validity
        assert status.highest_modseq == 30
        later = await env.store.append(box, mail("later"), b"m")
        assert later == 31


async def test_uids_are_per_mailbox(db_url: str) -> None:
    async with mail_env(db_url) as env:
        box = await inbox(env)
        sent = (await env.store.get_mailbox(env.alice, "Sent")).id
        assert await env.store.append(box, mail(), b"m") == 1
        assert await env.store.append(sent, mail(), b"m") == 1
        assert await env.store.append(box, mail(), b"m") == 2
        with pytest.raises(NoSuchMailbox):
            await env.store.append(box + 1000, mail(), b"m")
        assert await count(env, MailContent) == 3  # the refused append stored nothing


async def test_append_keeps_flags_and_internal_date(db_url: str) -> None:
    async with mail_env(db_url) as env:
        box = await inbox(env)
        when = dt.datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=dt.UTC)
        raw = mail("dated")
        uid = await env.store.append(
            box, raw, b"m", flags=frozenset({"\\Draft", "$Label1"}), internal_date=when
        )
        row = (await env.store.rows(box, [uid]))[uid]
        assert row.flags == frozenset({"\\Draft", "$Label1"})
        assert row.internal_date == when
        assert row.size == len(raw) and row.kind == "mail" and row.recent
        assert await env.store.rows(box, [uid + 1]) == {}


async def test_changes_since_a_modseq(db_url: str) -> None:
    async with mail_env(db_url) as env:
        box = await inbox(env)
        other = (await env.store.get_mailbox(env.alice, "Drafts")).id
        uids = [await env.store.append(box, mail(str(i)), b"m") for i in range(3)]
        everything = await env.store.changes(box, None)
        assert [r.uid for r in everything.updated] == uids
        assert everything.expunged == []
        first_mark = everything.highest_modseq
        assert first_mark == 3

        assert await env.store.changes(box, first_mark) == Changes(first_mark, [], [])

        await env.store.store_flags(box, [2], frozenset({"\\Flagged"}), "add")
        uid4 = await env.store.append(box, mail("4"), b"m")
        await env.store.append(other, mail("elsewhere"), b"m")  # another mailbox
        later = await env.store.changes(box, first_mark)
        assert later.highest_modseq > first_mark
        assert [r.uid for r in later.updated] == [2, uid4]
        assert later.updated[0].flags == frozenset({"\\Flagged"})
        assert later.expunged == []

        second_mark = later.highest_modseq
        await env.store.expunge(box, [1, 3])
        gone = await env.store.changes(box, second_mark)
        assert gone.highest_modseq > second_mark
        assert gone.updated == [] and sorted(gone.expunged) == [1, 3]
        since_start = await env.store.changes(box, first_mark)
        assert [r.uid for r in since_start.updated] == [2, uid4]
        assert sorted(since_start.expunged) == [1, 3]
        now = await env.store.changes(box, None)
        assert [r.uid for r in now.updated] == [2, uid4] and now.expunged == []
        with pytest.raises(NoSuchMailbox):
            await env.store.changes(box + 1000, None)


async def test_highest_modseq_grows_with_every_change(db_url: str) -> None:
    async with mail_env(db_url) as env:
        box = await inbox(env)
        marks = [(await env.store.status(box)).highest_modseq]

        async def step() -> None:
            marks.append((await env.store.status(box)).highest_modseq)

        await env.store.append(box, mail(), b"m")
        await step()
        await env.store.store_flags(box, [1], frozenset({"\\Seen"}), "add")
        await step()
        await env.store.copy(box, [1], box, move=False, recent=False)
        await step()
        await env.store.expunge(box, [1])
        await step()
        assert marks == sorted(set(marks)), marks
        # no-op writes do not take a modseq
        await env.store.store_flags(box, [2], frozenset({"\\Seen"}), "add")  # already set
        await env.store.expunge(box, [1])  # already gone
        await env.store.store_flags(box, [99], frozenset({"\\Seen"}), "add")
        assert (await env.store.status(box)).highest_modseq == marks[-1]


# ---- flags -----------------------------------------------------------------------------


async def test_store_flags_add_remove_replace(db_url: str) -> None:
    async with mail_env(db_url) as env:
        box = await inbox(env)
        for i in range(3):
            await env.store.append(box, mail(str(i)), b"m")
        added = await env.store.store_flags(box, [1, 2], frozenset({"\\Seen", "$Work"}), "add")
        assert added == {1: frozenset({"\\Seen", "$Work"}), 2: frozenset({"\\Seen", "$Work"})}
        removed = await env.store.store_flags(box, [1], frozenset({"$Work", "\\Flagged"}), "remove")
        assert removed == {1: frozenset({"\\Seen"})}
        replaced = await env.store.store_flags(
            box, [2, 3, 77], frozenset({"\\Answered"}), "replace"
        )
        assert replaced == {2: frozenset({"\\Answered"}), 3: frozenset({"\\Answered"})}
        cleared = await env.store.store_flags(box, [3], frozenset(), "replace")
        assert cleared == {3: frozenset()}
        rows = await env.store.rows(box, [1, 2, 3])
        assert {uid: r.flags for uid, r in rows.items()} == {
            1: frozenset({"\\Seen"}),
            2: frozenset({"\\Answered"}),
            3: frozenset(),
        }
        with pytest.raises(ValueError, match="mode"):
            await env.store.store_flags(box, [1], frozenset({"\\Seen"}), "toggle")


INVALID_FLAGS = [
    frozenset({"\\Foo"}),
    frozenset({"\\Recent"}),
    frozenset({"\\Seen", "\\Foo"}),
    frozenset({"two words"}),
    frozenset({"tab\there"}),
    frozenset({"new\r\nline"}),
    frozenset({""}),
    frozenset({"é"}),
    frozenset({"x" * 101}),
    frozenset(f"$k{i}" for i in range(MAX_KEYWORDS + 1)),
]


@pytest.mark.parametrize("flags", INVALID_FLAGS, ids=lambda f: repr(sorted(f))[:30])
def test_check_flags_refuses(flags: frozenset[str]) -> None:
    with pytest.raises(MailboxError):
        check_flags(flags)


async def test_invalid_flags_are_refused_and_change_nothing(db_url: str) -> None:
    async with mail_env(db_url) as env:
        box = await inbox(env)
        await env.store.append(box, mail(), b"m", flags=frozenset({"\\Seen"}))
        before = await env.store.status(box)
        for flags in INVALID_FLAGS:
            for mode in ("add", "remove", "replace"):
                with pytest.raises(MailboxError):
                    await env.store.store_flags(box, [1], flags, mode)
            with pytest.raises(MailboxError):
                await env.store.append(box, mail(), b"m", flags=flags)
        assert await env.store.status(box) == before
        assert (await env.store.rows(box, [1]))[1].flags == frozenset({"\\Seen"})
        assert await count(env, MailContent) == 1


async def test_max_keywords_are_accepted(db_url: str) -> None:
    async with mail_env(db_url) as env:
        box = await inbox(env)
        await env.store.append(box, mail(), b"m")
        keywords = frozenset(f"$k{i}" for i in range(MAX_KEYWORDS)) | {"\\Seen"}
        result = await env.store.store_flags(box, [1], keywords, "replace")
        assert result == {1: keywords}


@pytest.mark.parametrize("keyword", ["a(b", "a)b", "{5}", 'say"hi', "a]b", "50%", "a*", "a\\b"])
def test_keywords_must_be_atoms(keyword: str) -> None:
    with pytest.raises(MailboxError):
        check_flags([keyword])


def test_check_flags_accepts_system_flags_and_atoms() -> None:
    flags = ["\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft", "$Label1", "Junk"]
    assert check_flags(flags) == frozenset(flags)
    assert check_flags([]) == frozenset()


async def test_deleted_uids(db_url: str) -> None:
    async with mail_env(db_url) as env:
        box = await inbox(env)
        for i in range(4):
            await env.store.append(box, mail(str(i)), b"m")
        assert await env.store.deleted_uids(box, None) == []
        await env.store.store_flags(box, [3, 1], frozenset({"\\Deleted"}), "add")
        await env.store.store_flags(box, [2], frozenset({"$Deleted"}), "add")  # a keyword
        assert await env.store.deleted_uids(box, None) == [1, 3]
        assert await env.store.deleted_uids(box, [2, 3, 4]) == [3]
        assert await env.store.deleted_uids(box, []) == []
        await env.store.expunge(box, await env.store.deleted_uids(box, None))
        assert sorted(await env.store.rows(box, [1, 2, 3, 4])) == [2, 4]
        assert await env.store.deleted_uids(box, None) == []
        await env.store.expunge(box, [])  # nothing to do


async def test_claim_recent(db_url: str) -> None:
    async with mail_env(db_url) as env:
        box = await inbox(env)
        assert await env.store.claim_recent(box) == []
        for i in range(3):
            await env.store.append(box, mail(str(i)), b"m")
        await env.store.append(box, mail("old"), b"m", recent=False)
        assert await env.store.claim_recent(box) == [1, 2, 3]
        assert await env.store.claim_recent(box) == []
        assert (await env.store.status(box)).recent == 0
        await env.store.append(box, mail("new"), b"m")
        claims = await asyncio.wait_for(
            asyncio.gather(*(env.store.claim_recent(box) for _ in range(5))), WAIT
        )
        assert sorted(claims) == [[], [], [], [], [5]]  # exactly one session sees it


# ---- copy / move -------------------------------------------------------------------------


async def test_copy_keeps_content_and_gives_new_uids(db_url: str) -> None:
    async with mail_env(db_url) as env:
        box = await inbox(env)
        await env.store.create_mailbox(env.alice, "Archive")
        dest = (await env.store.get_mailbox(env.alice, "Archive")).id
        await env.store.append(dest, mail("already"), b"m")
        raws = [mail(f"copy-{i}") for i in range(3)]
        for i, raw in enumerate(raws):
            await env.store.append(box, raw, f"meta-{i}".encode(), flags=frozenset({"$K"}))
        contents_before = await count(env, MailContent)
        blobs_before = await count(env, Blob)

        source_mark = (await env.store.status(box)).highest_modseq
        pairs = await env.store.copy(box, [3, 1, 99], dest, move=False, recent=True)
        assert pairs == [(1, 2), (3, 3)]
        src_rows = await env.store.rows(box, [1, 2, 3])
        dst_rows = await env.store.rows(dest, [2, 3])
        assert sorted(src_rows) == [1, 2, 3]  # the source keeps them
        for old, new in pairs:
            assert dst_rows[new].content_id == src_rows[old].content_id
            assert dst_rows[new].flags == frozenset({"$K"})
            assert dst_rows[new].internal_date == src_rows[old].internal_date
            assert dst_rows[new].recent
            assert await env.store.load_bytes(dst_rows[new].content_id) == raws[old - 1]
        assert await count(env, MailContent) == contents_before  # no bytes duplicated
        assert await count(env, Blob) == blobs_before
        assert (await env.store.status(dest)).next_uid == 4
        # a copy leaves the source alone
        assert (await env.store.status(box)).highest_modseq == source_mark

        assert await env.store.copy(box, [50, 51], dest, move=False, recent=False) == []
        assert await env.store.copy(box, [], dest, move=True, recent=False) == []
        assert (await env.store.status(dest)).next_uid == 4
        with pytest.raises(NoSuchMailbox):
            await env.store.copy(box, [1], dest + 1000, move=False, recent=False)


async def test_move_removes_from_source_and_records_the_expunge(db_url: str) -> None:
    async with mail_env(db_url) as env:
        box = await inbox(env)
        trash = (await env.store.get_mailbox(env.alice, "Trash")).id
        raws = [mail(f"move-{i}") for i in range(3)]
        for raw in raws:
            await env.store.append(box, raw, b"m")
        mark = (await env.store.status(box)).highest_modseq
        pairs = await env.store.copy(box, [2, 3], trash, move=True, recent=False)
        assert pairs == [(2, 1), (3, 2)]
        assert sorted(await env.store.rows(box, [1, 2, 3])) == [1]
        moved = await env.store.rows(trash, [1, 2])
        assert [await env.store.load_bytes(moved[u].content_id) for u in (1, 2)] == raws[1:]
        assert not moved[1].recent
        changes = await env.store.changes(box, mark)
        assert sorted(changes.expunged) == [2, 3] and changes.updated == []
        status = await env.store.status(box)
        assert status.exists == 1 and status.next_uid == 4
        # moving what is gone already does nothing
        assert await env.store.copy(box, [2, 3], trash, move=True, recent=False) == []
        assert (await env.store.status(trash)).exists == 2


# ---- contents and encryption at rest -----------------------------------------------------


async def test_mail_and_meta_are_encrypted_at_rest(db_url: str) -> None:
    async with mail_env(db_url) as env:
        box = await inbox(env)
        marker = "MARKER-" + secrets.token_hex(12)
        meta_marker = "METAMARK-" + secrets.token_hex(12)
        raw = mail(marker, subject=f"Secret {marker}") + os.urandom(64)
        meta = f'{{"subject": "{meta_marker}"}}'.encode() + bytes(range(256))
        uid = await env.store.append(box, raw, meta)
        row = (await env.store.rows(box, [uid]))[uid]
        assert await env.store.load_bytes(row.content_id) == raw
        assert await env.store.load_meta([row.content_id]) == {row.content_id: meta}
        assert await env.store.load_meta([]) == {}

        async with env.engine.connect() as conn:
            blob_rows = (
                await conn.execute(text("SELECT nonce, wrapped_key, ciphertext, sha256 FROM blobs"))
            ).all()
            contents = (await conn.execute(text("SELECT parts, kind FROM mail_contents"))).all()
        assert len(blob_rows) == 2  # the mail and its meta
        for needle in (marker.encode(), meta_marker.encode(), raw, meta):
            for nonce, wrapped, ciphertext, digest in blob_rows:
                for column in (bytes(nonce), bytes(wrapped), bytes(ciphertext)):
                    assert needle not in column
                assert needle.decode("latin-1") not in digest
            for parts, kind in contents:
                assert marker not in parts and marker not in kind
        assert {len(bytes(n)) for n, *_ in blob_rows} == {12}
        assert {len(bytes(w)) for _, w, *_ in blob_rows} == {12 + 32 + 16}

        if env.engine.dialect.name == "sqlite":
            path = make_url(db_url).database
            assert path
            files = sorted(glob.glob(path + "*"))  # the database, its WAL and shared memory
            data = b"".join(Path(f).read_bytes() for f in files)
            assert b"Receipts" in data  # the check sees what is stored in clear
            assert marker.encode() not in data
            assert meta_marker.encode() not in data
            assert marker.encode("utf-16-le") not in data


async def test_blobs_are_useless_under_another_key(db_url: str) -> None:
    async with mail_env(db_url) as env:
        box = await inbox(env)
        uid = await env.store.append(box, mail("k"), b"m")
        content = (await env.store.rows(box, [uid]))[uid].content_id
        stranger = MailboxStore(env.sessions, BlobCipher(os.urandom(32)), MailboxNotifier())
        with pytest.raises(Exception, match="another key"):
            await stranger.load_bytes(content)


async def test_load_bytes_of_a_missing_content(db_url: str) -> None:
    async with mail_env(db_url) as env:
        with pytest.raises(MailboxError):
            await env.store.load_bytes(12345)
        assert await env.store.load_meta([12345]) == {}


async def test_content_facts_of_a_plain_mail(db_url: str) -> None:
    async with mail_env(db_url) as env:
        async with transaction(env.sessions) as session:
            content = await insert_content(
                session, env.cipher, kind="mail", data=[b"part one ", b"part two"], meta=b"M"
            )
        facts = await env.store.content_facts([content, content, 999])
        assert list(facts) == [content]
        fact = facts[content]
        assert (fact.content_id, fact.kind, fact.registry, fact.trace_code) == (
            content,
            "mail",
            None,
            None,
        )
        assert await env.store.load_bytes(content) == b"part one part two"
        assert await env.store.load_meta([content]) == {content: b"M"}
        assert await env.store.content_facts([]) == {}


# ---- races and outages -------------------------------------------------------------------


async def test_concurrent_creates_of_one_name_make_one_mailbox(db_url: str) -> None:
    async with mail_env(db_url) as env:
        results = await asyncio.wait_for(
            asyncio.gather(
                *(env.store.create_mailbox(env.alice, "Same/Sub") for _ in range(4)),
                return_exceptions=True,
            ),
            WAIT * 2,
        )
        created = [r for r in results if not isinstance(r, BaseException)]
        assert len(created) == 1, results
        assert all(r in created or isinstance(r, MailboxExists) for r in results), results
        names = [b.name for b in await env.store.list_mailboxes(env.alice)]
        assert names == ["Same", "Same/Sub"]


@pytest.mark.postgres
async def test_create_mailbox_racing_another_writer_reports_exists(pg_url: str) -> None:
    """Another transaction creates the same name between our check and our insert."""
    async with mail_env(pg_url) as env:
        racer = await env.engine.connect()
        try:
            trans = await racer.begin()
            await racer.execute(
                insert(Mailbox).values(
                    employee_id=env.alice, name="Race", special_use=None, uid_validity=7,
                    next_uid=1, highest_modseq=0, subscribed=True, created_at=utcnow(),
                )
            )  # fmt: skip
            creating = asyncio.ensure_future(env.store.create_mailbox(env.alice, "Race"))
            await asyncio.sleep(0.5)  # our INSERT now waits on the racer's unique key
            assert not creating.done()
            await trans.commit()
            outcome = await asyncio.wait_for(asyncio.gather(creating, return_exceptions=True), WAIT)
        finally:
            await racer.close()
        assert isinstance(outcome[0], MailboxExists), repr(outcome[0])


async def test_a_deleted_mailbox_id_is_never_given_to_a_new_mailbox(
    db_url: str, request: pytest.FixtureRequest
) -> None:
    """Sessions hold mailbox ids (a selected mailbox); a reused id would show them
    another folder, even another employee's."""
    async with mail_env(db_url) as env:
        await env.store.ensure_folders(env.alice)
        doomed = await env.store.create_mailbox(env.alice, "Doomed")
        await env.store.append(doomed.id, mail("alice's"), b"m")
        await env.store.delete_mailbox(env.alice, "Doomed")
        bobs = await env.store.create_mailbox(env.bob, "Bob's private")
        await env.store.append(bobs.id, mail("bob's"), b"m")
        assert bobs.id != doomed.id
        with pytest.raises(NoSuchMailbox):
            await env.store.changes(doomed.id, None)


@pytest.mark.postgres
async def test_database_down_raises_store_unavailable(own_postgres: Any) -> None:
    url = own_postgres.server.url("postgres")
    engine = create_engine(url, connect_timeout=2.0)
    await migrate.upgrade(engine)
    await engine.dispose()
    async with mail_env(url) as env:
        box = await inbox(env)
        uid = await env.store.append(box, mail("before"), b"m")
        content = (await env.store.rows(box, [uid]))[uid].content_id
        # "fast": the test cluster runs with synchronous_commit=off, so an immediate stop
        # could lose the rows committed just before it.
        await asyncio.to_thread(own_postgres.stop, "fast")
        with env.notifier.subscription(box) as woken:
            with pytest.raises(StoreUnavailable):
                await asyncio.wait_for(env.store.append(box, mail("during"), b"m"), 30)
            assert not woken.is_set()
        for call in (
            env.store.status(box),
            env.store.changes(box, None),
            env.store.list_mailboxes(env.alice),
            env.store.load_bytes(content),
            env.store.store_flags(box, [uid], frozenset({"\\Seen"}), "add"),
            env.store.create_mailbox(env.alice, "New"),
        ):
            with pytest.raises(StoreUnavailable) as err:
                await asyncio.wait_for(call, 30)
            assert "postgres" not in str(err.value).lower()
        await asyncio.to_thread(own_postgres.start)
        status = await asyncio.wait_for(env.store.status(box), 30)
        assert status.exists == 1 and status.next_uid == 2  # the failed append left nothing
        assert await env.store.append(box, mail("after"), b"m") == 2


async def test_a_mailbox_cannot_be_renamed_into_itself(db_url: str) -> None:
    async with mail_env(db_url) as env:
        await env.store.create_mailbox(env.alice, "Projects")
        with pytest.raises(MailboxError, match="into itself"):
            await env.store.rename_mailbox(env.alice, "Projects", "Projects/Old")
        names = [b.name for b in await env.store.list_mailboxes(env.alice)]
        assert "Projects" in names and "Projects/Old" not in names

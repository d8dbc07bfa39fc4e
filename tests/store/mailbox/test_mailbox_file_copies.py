"""Filing a batch of delivered copies in a few statements: the same UIDs, rows, contents
and descriptions as one append each, on SQLite and PostgreSQL."""

from __future__ import annotations

import json

from sqlalchemy import select

from gateway.store.mailbox.store import NewCopy, file_copies_in
from gateway.store.models import MailContent
from testkit.mailbox import inbox, mail, mail_env


async def test_a_batch_gets_each_mailbox_its_next_uids(db_url: str) -> None:
    async with mail_env(db_url) as env:
        alice, bob = await inbox(env, env.alice), await inbox(env, env.bob)
        first = await env.store.append(alice, mail("existing"), b"meta-0")
        rows = await env.store.rows(alice, [first])
        async with env.sessions() as session:
            parts = await session.scalar(
                select(MailContent.parts).where(MailContent.id == rows[first].content_id)
            )
        blob_ids = json.loads(parts or "[]")
        before = (await env.store.status(alice)).highest_modseq
        batch = [
            NewCopy(alice, b"meta-a1", blob_ids, 111, None, None),
            NewCopy(bob, b"meta-b1", blob_ids, 222, None, None),
            NewCopy(alice, b"meta-a2", blob_ids, 333, None, None),
        ]
        async with env.store.writing("test") as scope:
            uids = await file_copies_in(scope, env.cipher, batch)
            assert scope.touched == {alice, bob}
        assert uids == [first + 1, 1, first + 2]

        got = await env.store.rows(alice, uids[::2])
        assert [got[u].size for u in uids[::2]] == [111, 333]
        assert all(got[u].kind == "copy" and got[u].recent for u in got)
        metas = await env.store.load_meta([r.content_id for r in got.values()])
        assert sorted(metas.values()) == [b"meta-a1", b"meta-a2"]
        assert await env.store.load_bytes(got[uids[0]].content_id) == mail("existing")
        status = await env.store.status(alice)
        assert status.exists == 3 and status.highest_modseq == before + 1
        changes = await env.store.changes(alice, before)
        assert [r.uid for r in changes.updated] == [first + 1, first + 2]
        assert (await env.store.rows(bob, [1]))[1].size == 222

        async with env.store.writing("test") as scope:
            assert await file_copies_in(scope, env.cipher, []) == []

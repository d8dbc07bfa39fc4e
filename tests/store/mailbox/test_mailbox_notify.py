"""Mailbox change notices: in-process events, and PostgreSQL LISTEN/NOTIFY across nodes."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import pytest

from gateway.store.db import create_engine, session_factory
from gateway.store.mailbox.notify import MailboxNotifier
from gateway.store.mailbox.store import MailboxStore, append_in, insert_content
from testkit.mailbox import WAIT, MailEnv, inbox, mail, mail_env, wait_set

# ---- in-process ------------------------------------------------------------------------------


async def test_changed_sets_only_the_subscribed_mailboxs_event() -> None:
    notifier = MailboxNotifier()
    with (
        notifier.subscription(1) as one,
        notifier.subscription(1) as one_again,
        notifier.subscription(2) as two,
    ):
        notifier.changed([3, 4])
        assert not one.is_set() and not two.is_set()
        notifier.changed([2])
        assert two.is_set() and not one.is_set() and not one_again.is_set()
        notifier.changed([1, 99])
        assert one.is_set() and one_again.is_set()
    assert notifier._waiters == {}  # every subscription removed itself
    notifier.changed([1, 2])  # nobody waiting: nothing happens


async def test_a_subscription_ended_is_not_set() -> None:
    notifier = MailboxNotifier()
    with notifier.subscription(5) as first:
        pass
    notifier.changed([5])
    assert not first.is_set()


async def test_wait_returns_after_the_timeout_without_a_notice() -> None:
    notifier = MailboxNotifier()
    started = time.monotonic()
    await asyncio.wait_for(notifier.wait(7, seconds=0.05), 2)
    assert 0.04 <= time.monotonic() - started < 1.5
    assert notifier._waiters == {}


async def test_wait_returns_early_on_a_notice() -> None:
    notifier = MailboxNotifier()
    waiting = asyncio.ensure_future(notifier.wait(7, seconds=30))
    await asyncio.sleep(0.01)  # let it subscribe
    started = time.monotonic()
    notifier.changed([8])
    await asyncio.sleep(0.05)
    assert not waiting.done()
    notifier.changed([7])
    await asyncio.wait_for(waiting, 2)
    assert time.monotonic() - started < 1.5


async def test_start_listening_is_a_no_op_on_sqlite(tmp_path: object) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/n.db")
    notifier = MailboxNotifier()
    try:
        notifier.start_listening(engine)
        assert not notifier._pg.running
        await notifier.stop()
    finally:
        await engine.dispose()


async def test_a_store_write_wakes_a_subscription_after_commit(db_url: str) -> None:
    async with mail_env(db_url) as env:
        box = await inbox(env)
        other = (await env.store.get_mailbox(env.alice, "Sent")).id
        with env.notifier.subscription(box) as woken, env.notifier.subscription(other) as quiet:
            await env.store.append(box, mail(), b"m")
            assert woken.is_set()  # at once, once append has returned (committed)
            assert not quiet.is_set()
        with env.notifier.subscription(box) as woken:
            await env.store.store_flags(box, [1], frozenset({"\\Seen"}), "add")
            assert woken.is_set()
        with env.notifier.subscription(box) as woken, env.notifier.subscription(other) as dest:
            await env.store.copy(box, [1], other, move=True, recent=False)
            assert woken.is_set() and dest.is_set()


async def test_the_notice_comes_after_the_commit(db_url: str) -> None:
    """A woken waiter that looks again sees the change."""
    async with mail_env(db_url) as env:
        box = await inbox(env)
        seen: list[int] = []

        async def waiter() -> None:
            with env.notifier.subscription(box) as woken:
                ready.set()
                assert await wait_set(woken)
                seen.append((await env.store.status(box)).exists)

        ready = asyncio.Event()
        task = asyncio.ensure_future(waiter())
        await asyncio.wait_for(ready.wait(), WAIT)
        await env.store.append(box, mail(), b"m")
        await asyncio.wait_for(task, WAIT)
        assert seen == [1]


async def test_a_rolled_back_write_sends_no_local_notice(db_url: str) -> None:
    async with mail_env(db_url) as env:
        box = await inbox(env)

        class Boom(Exception):
            pass

        with env.notifier.subscription(box) as woken:
            with pytest.raises(Boom):
                async with env.store.writing("test") as scope:
                    content = await insert_content(
                        scope.session, env.cipher, kind="mail", data=[mail()], meta=b"m"
                    )
                    await append_in(scope, box, content)
                    raise Boom
            assert not woken.is_set()
        status = await env.store.status(box)
        assert (status.exists, status.next_uid, status.highest_modseq) == (0, 1, 0)


# ---- PostgreSQL: several gateway nodes ----------------------------------------------------------


@contextlib.asynccontextmanager
async def second_node(env: MailEnv, url: str) -> AsyncIterator[tuple[MailboxNotifier, MailEnv]]:
    """Node A (env, its own notifier listening) and node B: another engine and notifier."""
    engine_b = create_engine(url)
    notifier_b = MailboxNotifier()
    try:
        env.notifier.start_listening(env.engine)
        notifier_b.start_listening(engine_b)
        await asyncio.wait_for(env.notifier.listening.wait(), WAIT)
        await asyncio.wait_for(notifier_b.listening.wait(), WAIT)
        node_b = MailEnv(
            engine_b,
            session_factory(engine_b),
            env.cipher,
            notifier_b,
            MailboxStore(session_factory(engine_b), env.cipher, notifier_b),
            env.alice,
            env.bob,
        )
        yield notifier_b, node_b
    finally:
        await notifier_b.stop()
        await env.notifier.stop()
        await engine_b.dispose()


@pytest.mark.postgres
async def test_an_append_on_one_node_wakes_idle_on_another(pg_url: str) -> None:
    async with mail_env(pg_url) as env, second_node(env, pg_url) as (notifier_b, node_b):
        box = await inbox(env)
        other = (await env.store.get_mailbox(env.alice, "Trash")).id
        with notifier_b.subscription(box) as woken, notifier_b.subscription(other) as quiet:
            started = time.monotonic()
            uid = await env.store.append(box, mail("multi-node"), b"m")
            assert await wait_set(woken, 1.0), "node B was not woken within 1 s"
            assert time.monotonic() - started < 1.5
            assert not quiet.is_set()
        # node B looks again and sees the mail (a notice carries no data)
        assert uid in await node_b.store.rows(box, [uid])
        # and the other way round
        with env.notifier.subscription(box) as woken_a:
            await node_b.store.store_flags(box, [uid], frozenset({"\\Seen"}), "add")
            assert await wait_set(woken_a, 1.0)


@pytest.mark.postgres
async def test_many_mailboxes_in_one_notice(pg_url: str) -> None:
    async with mail_env(pg_url) as env, second_node(env, pg_url) as (notifier_b, _node_b):
        ids = list(range(1, 1200))  # more than one pg_notify payload
        with notifier_b.subscription(1) as first, notifier_b.subscription(1199) as last:
            async with env.store.writing("test") as scope:
                scope.touched.update(ids)
            assert await wait_set(first, 1.0) and await wait_set(last, 1.0)


@pytest.mark.postgres
async def test_a_rolled_back_transaction_notifies_no_node(pg_url: str) -> None:
    async with mail_env(pg_url) as env, second_node(env, pg_url) as (notifier_b, _node_b):
        box = await inbox(env)

        class Boom(Exception):
            pass

        with notifier_b.subscription(box) as woken_b, env.notifier.subscription(box) as woken_a:
            with pytest.raises(Boom):
                async with env.store.writing("test") as scope:
                    content = await insert_content(
                        scope.session, env.cipher, kind="mail", data=[mail()], meta=b"m"
                    )
                    await append_in(scope, box, content)
                    raise Boom
            assert not await wait_set(woken_b, 0.5)
            assert not woken_a.is_set()
            # a committed write still gets through afterwards
            await env.store.append(box, mail("after"), b"m")
            assert await wait_set(woken_b, 1.0)
        assert (await env.store.status(box)).exists == 1


@pytest.mark.postgres
async def test_stop_ends_the_listener(pg_url: str) -> None:
    engine = create_engine(pg_url)
    notifier = MailboxNotifier()
    try:
        notifier.start_listening(engine)
        notifier.start_listening(engine)  # a second call starts nothing more
        await asyncio.wait_for(notifier.listening.wait(), WAIT)
        listener = notifier._pg._task
        assert listener is not None
        await asyncio.wait_for(notifier.stop(), WAIT)
        assert listener.done() and not notifier._pg.running
        await notifier.stop()  # twice is fine
    finally:
        await engine.dispose()

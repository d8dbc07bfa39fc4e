"""Two writers that allocate UIDs in the same two mailboxes, in opposite orders, on
PostgreSQL (two gateway nodes filing receipts): with `lock_mailboxes` both rows are
locked in id order first, so the second writer waits for the first instead of
deadlocking (SQLSTATE 40P01), and the UIDs come out one after the other."""

from __future__ import annotations

import asyncio

from gateway.store.mailbox.store import lock_mailboxes
from gateway.store.mailbox.writes import allocate
from testkit.mailbox import inbox, mail_env


async def test_opposite_orders_wait_in_line_instead_of_deadlocking(pg_url: str) -> None:
    async with mail_env(pg_url) as env:
        alice, bob = await inbox(env, env.alice), await inbox(env, env.bob)
        first_holds = asyncio.Event()
        uids: dict[str, list[int]] = {}

        async def writer(name: str, order: list[int], hold: bool) -> None:
            async with env.store.writing("test") as scope:
                await lock_mailboxes(scope.session, order)
                got = []
                for box in order:  # allocated in the caller's order, as the writers do
                    got.append((await allocate(scope.session, box, 1))[0])
                    if hold and len(got) == 1:
                        first_holds.set()  # holds its first row; the other writer arrives
                        await asyncio.sleep(0.3)
                uids[name] = got

        async def second() -> None:
            await first_holds.wait()
            await writer("second", [bob, alice], hold=False)

        async with asyncio.timeout(30):
            await asyncio.gather(writer("first", [alice, bob], hold=True), second())
        assert uids == {"first": [1, 1], "second": [2, 2]}  # bob's then alice's, after first

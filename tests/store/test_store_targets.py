"""Delivery targets through the store: chosen once at acceptance from each recipient,
written in their one text form, and read back typed by the operators' queue."""

from __future__ import annotations

import dataclasses

from gateway.model.message import Recipient
from gateway.model.target import LOCAL, DeliveryTarget, agency_server, peer_gateway, target_for
from gateway.store.queue import QueueAdmin
from testkit.store import AUDIT_KEY, stamper, store_env, submission

RECIPIENTS = (
    Recipient("clerk@moh.gov.example", True),
    Recipient("clerk@mof.gov.example", True, mailserver="mof"),
    Recipient("clerk@krg.gov.example", False, peer="krg"),
)


async def test_each_copy_is_queued_for_its_recipients_target(db_url: str) -> None:
    async with store_env(db_url) as env:
        sub = dataclasses.replace(submission(), recipients=RECIPIENTS)
        _, stamp = stamper(sub)
        accepted = await env.store.accept(sub, stamp, actor="smtp:test")
        copies = await env.store.copies_for(accepted.message_id)
        stored = {c.recipient: DeliveryTarget.parse(c.target) for c in copies}
        assert stored == {r.address: target_for(r) for r in RECIPIENTS}
        assert set(stored.values()) == {LOCAL, agency_server("mof"), peer_gateway("krg")}

        queue = QueueAdmin(env.sessions, AUDIT_KEY)
        entries = await queue.list()
        assert {e.recipient: e.target for e in entries} == stored
        assert [e.as_dict()["target"] for e in entries] == [t.column for t in stored.values()]
        only_mof = await queue.list(target=agency_server("mof"))
        assert [e.recipient for e in only_mof] == ["clerk@mof.gov.example"]
        assert await queue.list(target=peer_gateway("elsewhere")) == []
        depths = await queue.depth_by_target()
        assert set(depths) == set(stored.values())
        assert all(d.waiting == 1 and d.target == t for t, d in depths.items())

"""Two nodes on one PostgreSQL behind HAProxy (PROXY protocol v2), one of them
SIGKILLed mid-way and restarted (docs/SCALING.md): 20 clients submit signed
letters and read their recipients' mail through the balancer from 127.0.0.2.

Every acknowledged message is stored, byte for byte, under its own registry
number, and the numbers are gap-free; every copy is delivered into exactly one
mailbox row; the access trail names the client's own address (never the
balancer's 127.0.0.3) and a node of the cluster; both nodes accepted mail; the
audit chain verifies (`barid audit verify`, exit 0); neither node met a
deadlock (SQLSTATE 40P01) in its log.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from gateway.config import load_settings
from gateway.store.access_trail import ACCESS_ACTION
from gateway.store.audit import AUDIT_KEY_PURPOSE
from gateway.store.db import create_engine, session_factory
from gateway.store.messages import MessageStore
from gateway.store.models import (
    AuditEvent,
    AuditPending,
    DeliveryQueueEntry,
    MailboxMessage,
    MailContent,
    Message,
    MessageCopy,
    ReceiptJob,
)
from keys.gateway_keys import load_gateway_keys
from testkit.cli import BaridCli
from testkit.cluster import cluster, make_first_node, make_second_node
from testkit.cluster_clients import CLIENT_SOURCE, Account, read_inbox, submit
from testkit.gateway import (
    demo_credentials,
    drop_gnupghome,
    import_demo_keys,
    new_gnupghome,
    tls_client,
)
from testkit.haproxy import SOURCE
from testkit.messages import pgp_mime

MOH = "minister@moh.gov.example"
RECIPIENTS = ["minister@mof.gov.example", "registrar@moh.gov.example"]
CLIENTS, PER_CLIENT = 20, 2
NODES = ("node-a", "node-b")


def letters(credentials: dict[str, Any]) -> list[list[bytes]]:
    """PER_CLIENT small signed letters for each client, from the demo's minister."""
    home = new_gnupghome()
    try:
        import_demo_keys(home, {MOH: credentials[MOH]})
        code = credentials[MOH]["code"]
        return [[pgp_mime(home, MOH, MOH, RECIPIENTS, extra=[("Barid-Employee-Code", code)],
                          document=b"%PDF-1.7 cluster " + f"{c}.{i}".encode())
                 for i in range(PER_CLIENT)] for c in range(CLIENTS)]  # fmt: skip
    finally:
        drop_gnupghome(home)


async def client(smtp_port: int, imap_port: int, tls: Any, accounts: dict[str, Account],
                 raws: list[bytes], acked: list[tuple[str, bytes]], index: int) -> None:  # fmt: skip
    await submit(smtp_port, tls, accounts[MOH], RECIPIENTS, raws, acked)
    await read_inbox(imap_port, tls, accounts[RECIPIENTS[index % len(RECIPIENTS)]])


async def settled(sessions: Any, seconds: float = 60) -> None:
    """Until every copy is delivered, every receipt done and every audit event linked."""
    deadline = time.monotonic() + seconds
    while True:
        async with sessions() as s:
            left = [
                await s.scalar(select(func.count()).select_from(DeliveryQueueEntry)
                               .where(DeliveryQueueEntry.state != "delivered")),
                await s.scalar(select(func.count()).select_from(ReceiptJob)
                               .where(ReceiptJob.state != "done")),
                await s.scalar(select(func.count()).select_from(AuditPending)),
            ]  # fmt: skip
        if not any(left):
            return
        assert time.monotonic() < deadline, f"not settled: queue, receipts, pending = {left}"
        await asyncio.sleep(0.1)


async def test_two_nodes_behind_haproxy_survive_a_sigkill(
    pg_url: str,
    tmp_path: Path,
    need_tool: Callable[[str], str],
    make_cli: Callable[[dict[str, str]], BaridCli],
) -> None:
    need_tool("haproxy")
    need_tool("gpg")
    first, second = tmp_path / "a", tmp_path / "b"
    make_first_node(first, pg_url, NODES[0])
    make_second_node(first, second, NODES[1], pg_url)
    credentials = demo_credentials(first)
    accounts = {a: Account(a, credentials[a]["password"]) for a in (MOH, *RECIPIENTS)}
    batches = letters(credentials)
    tls = tls_client(first / "tls" / "cert.pem")
    acked: list[tuple[str, bytes]] = []
    with cluster([first, second]) as running:
        node_a = running.nodes[0]
        tasks = [asyncio.create_task(client(running.smtp_port, running.imap_port, tls, accounts,
                                            batch, acked, i))
                 for i, batch in enumerate(batches)]  # fmt: skip
        try:
            for _ in range(3000):  # at most a minute, until a quarter is acknowledged
                if len(acked) >= CLIENTS * PER_CLIENT // 4:
                    break
                await asyncio.sleep(0.02)
            node_a.kill()  # mid-way: node A's sessions and its delivery work die with it
            await asyncio.sleep(0.3)
            await asyncio.to_thread(node_a.restart)
            async with asyncio.timeout(90):
                await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
        await check_store(first, acked)
    for data in (first, second):  # nodes never deadlocked on shared rows (mailbox UIDs)
        assert "40P01" not in (data / "serve.log").read_text(), data.name
    barid = make_cli({"BARID_CONFIG": str(first / "barid.toml")})
    verify = await asyncio.to_thread(barid, "audit", "verify")
    assert verify.code == 0, verify.out + verify.err


async def check_store(data: Path, acked: list[tuple[str, bytes]]) -> None:
    assert len(acked) == CLIENTS * PER_CLIENT
    assert len({registry for registry, _ in acked}) == len(acked)  # no registry number twice
    settings = load_settings(data / "barid.toml", environ={})
    keys = load_gateway_keys(settings.keys_dir)
    engine = create_engine(settings.database_url)
    try:
        sessions = session_factory(engine)
        await settled(sessions)
        store = MessageStore(sessions, keys.master_key, keys.derive(AUDIT_KEY_PURPOSE))
        for registry, raw in acked:
            message = await store.message_by_registry(registry)
            assert message is not None, registry
            assert await store.load_original(message.id) == raw  # byte-identical
        async with sessions() as s:
            registries = list(await s.scalars(select(Message.registry_number)))
            copies = int(await s.scalar(select(func.count()).select_from(MessageCopy)) or 0)
            per_copy = dict((await s.execute(
                select(MailContent.copy_id, func.count())
                .join(MailboxMessage, MailboxMessage.content_id == MailContent.id)
                .where(MailContent.kind == "copy").group_by(MailContent.copy_id))).all())  # fmt: skip
            events = (await s.execute(select(AuditEvent.action, AuditEvent.node, AuditEvent.details)
                                      .where(AuditEvent.action.in_(
                                          [ACCESS_ACTION, "message.accept"])))).all()  # fmt: skip
    finally:
        await engine.dispose()
    # Gap-free: a message whose 250 was lost in the kill is stored too, with its own number.
    serials = sorted(int(r.rsplit("/", 1)[1]) for r in registries)
    assert serials == list(range(1, len(serials) + 1)), serials
    assert len(acked) <= len(registries) <= len(acked) + CLIENTS
    assert copies == len(registries) * len(RECIPIENTS)
    assert len(per_copy) == copies and set(per_copy.values()) == {1}  # each copy filed once
    accepted_by = {node for action, node, _ in events if action == "message.accept"}
    assert accepted_by == set(NODES)  # the balancer used both nodes
    access = [(node, json.loads(details)) for action, node, details in events
              if action == ACCESS_ACTION]  # fmt: skip
    assert access, "no access trail"
    assert {details["client"] for _, details in access} == {CLIENT_SOURCE}  # never SOURCE
    assert SOURCE != CLIENT_SOURCE
    assert {node for node, _ in access} <= set(NODES)

"""`barid peer list|show|check`: central's view of the region peer, against a running
region gateway (check connects with mutual TLS and sends no mail)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from sqlalchemy import func, select

from gateway.store.models import InboundCopy


async def test_peer_list_show_and_check(pair: Any, make_cli: Callable[..., Any]) -> None:
    barid = make_cli({"BARID_CONFIG": str(pair.central_data / "barid.toml")})
    listed = barid("peer", "list", "--json")
    assert listed.code == 0, listed.err
    [row] = json.loads(listed.out)
    assert row["name"] == "region" and row["ready"] and row["trust"] == "pinned certificate"
    assert row["port"] == pair.region_port

    shown = barid("peer", "show", "region", "--json")
    assert shown.code == 0, shown.err
    details = json.loads(shown.out)
    [anchor] = details["tls_anchors"]
    assert anchor["kind"] == "pinned" and len(anchor["fingerprint"]) == 64
    assert details["dkim_keys"] == sorted(details["dkim_keys"]) and len(details["dkim_keys"]) == 2
    assert "region" in barid("peer", "show", "region").out

    # the region gateway is down: check fails, exit 1
    down = await asyncio.to_thread(barid, "peer", "check", "region", "--timeout", "5")
    assert down.code == 1 and "FAILED" in down.out

    region = await pair.start("region")
    checked = await asyncio.to_thread(barid, "peer", "check", "region", "--json")
    assert checked.code == 0, checked.out + checked.err
    report = json.loads(checked.out)
    assert report["tls"]["ok"] and report["tls"]["version"].startswith("TLSv1.")
    assert report["tls"]["peer_certificate_sha256"] == anchor["fingerprint"]
    assert report["dkim"]["ok"]
    async with region.gateway.sessions() as s:
        assert await s.scalar(select(func.count()).select_from(InboundCopy)) == 0

    unknown = barid("peer", "show", "nowhere")
    assert unknown.code != 0 and "no peer named 'nowhere'" in unknown.err

"""`barid revoke REGISTRY --reason TEXT`: on a message accepted by a running
gateway, the revocation is stored with its time and reason, audited, and refused
a second time; usage errors exit 2 with one line."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from pathlib import Path
from typing import Any

from sqlalchemy import select

from gateway.store.models import Message
from testkit.messages import pgp_mime

MOH = "minister@moh.gov.example"
MOF = "minister@mof.gov.example"
REASON = "issued in error; replaced by a corrected letter"


def one_line_error(result: Any, status: int, *words: str) -> str:
    assert result.code == status, (result.code, result.out, result.err)
    line = result.err.strip()
    assert line.startswith("barid: ") and "\n" not in line, result.err
    assert "Traceback" not in result.err
    for word in words:
        assert word in line, line
    return line


async def test_revoke_an_accepted_message(live: Any, gnupghome: Path, make_cli: Any) -> None:
    raw = pgp_mime(gnupghome, MOH, MOH, [MOF],
                   extra=[("Barid-Employee-Code", live.credentials[MOH]["code"])])  # fmt: skip
    code, text = await live.send(MOH, [MOF], raw)
    assert code == 250, (code, text)
    registry = text.split()[-1]
    await live.settle()
    cli = make_cli({"BARID_CONFIG": str(live.data / "barid.toml")})

    async def barid(*args: str) -> Any:
        # The CLI runs its own event loop: in a thread, beside the running gateway.
        return await asyncio.to_thread(cli, *args)

    before = dt.datetime.now(dt.UTC)
    result = await barid("revoke", registry, "--reason", f"  {REASON} ", "--json")
    assert result.code == 0, result.err
    out = json.loads(result.out)
    assert out["registry"] == registry and out["status"] == "revoked"
    assert out["reason"] == REASON

    async with live.gateway.sessions() as session:
        message = await session.scalar(select(Message).where(Message.registry_number == registry))
    assert message is not None
    assert message.status == "revoked" and message.revoked_reason == REASON
    assert message.revoked_at == out["revoked_at"]
    assert message.revoked_at is not None
    revoked_at = dt.datetime.strptime(message.revoked_at, "%Y-%m-%dT%H:%M:%S.%fZ")
    assert before - dt.timedelta(seconds=1) <= revoked_at.replace(tzinfo=dt.UTC)
    assert revoked_at.replace(tzinfo=dt.UTC) <= dt.datetime.now(dt.UTC)

    events = json.loads((await barid("audit", "log", "--action", "message.revoke", "--json")).out)
    assert len(events) == 1 and events[0]["target"] == registry
    assert events[0]["outcome"] == "ok" and REASON in json.dumps(events[0], ensure_ascii=False)
    verified = await barid("audit", "verify", "--json")
    assert verified.code == 0 and json.loads(verified.out)["ok"], verified.out

    again = await barid("revoke", registry, "--reason", "twice")
    one_line_error(again, 1, "already revoked", message.revoked_at)
    async with live.gateway.sessions() as session:
        kept = await session.scalar(select(Message).where(Message.registry_number == registry))
    assert kept is not None and kept.revoked_reason == REASON  # the first reason stays

    text_mode = await barid("revoke", "MOH/2026/999999", "--reason", "x")
    one_line_error(text_mode, 1, "MOH/2026/999999")
    events = json.loads((await barid("audit", "log", "--action", "message.revoke", "--json")).out)
    assert len(events) == 1  # refusals change nothing
    assert json.loads((await barid("audit", "verify", "--json")).out)["ok"]


def test_revoke_usage_errors(barid: Any) -> None:
    one_line_error(barid("revoke", "MOH/2026/000001"), 2, "--reason")
    one_line_error(barid("revoke", "MOH/2026/000001", "--reason", "   "), 2, "required")
    one_line_error(barid("revoke", "MOH/2026/000001", "--reason", "one\ntwo"), 2, "one line")
    one_line_error(barid("revoke", "MOH/2026/000001", "--reason", "x" * 501), 2, "500")
    line = one_line_error(barid("revoke", "MOH/2026/000001", "--reason", "x" * 500), 1)
    assert "no official message" in line and "MOH/2026/000001" in line
    json_error = barid("revoke", "moh/2026/000001", "--reason", "x", "--json")
    assert json_error.code == 1
    assert json.loads(json_error.out)["ok"] is False
    assert "MOH/2026/000001" in json.loads(json_error.out)["error"]

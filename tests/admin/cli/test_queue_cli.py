"""`barid queue list|show|retry|hold|release|purge`: on a running gateway whose
delivery worker is stopped (so copies stay queued), an operator holds, releases
and purges entries; each change is guarded, audited, and refused with one line
naming the current state when it does not apply. The queue depth gauges are
exported per target."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import generate_latest
from sqlalchemy import select

import gateway.delivery.local as local_delivery
from gateway import metrics
from gateway.store.models import DeliveryQueueEntry, ReceiptJob
from testkit.messages import pgp_mime

MOH = "minister@moh.gov.example"
MOF = "minister@mof.gov.example"


def one_line_error(result: Any, status: int, *words: str) -> str:
    assert result.code == status, (result.code, result.out, result.err)
    line = result.err.strip()
    assert line.startswith("barid: ") and "\n" not in line, result.err
    assert "Traceback" not in result.err
    for word in words:
        assert word in line, line
    return line


def gauge(name: str, target: str) -> float:
    text = generate_latest(metrics.REGISTRY).decode()
    prefix = f'{name}{{target="{target}"}} '
    lines = [line for line in text.splitlines() if line.startswith(prefix)]
    assert len(lines) == 1, text
    return float(lines[0][len(prefix) :])


async def test_queue_commands(
    live: Any, gnupghome: Path, make_cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    worker = live.gateway.worker
    await worker.stop()  # entries stay queued until the test runs a round
    monkeypatch.setattr(local_delivery, "QUEUE_GAUGE_SECONDS", 0.0)  # refresh every round
    registries = []
    for _ in range(2):
        raw = pgp_mime(gnupghome, MOH, MOH, [MOF],
                       extra=[("Barid-Employee-Code", live.credentials[MOH]["code"])])  # fmt: skip
        code, text = await live.send(MOH, [MOF], raw)
        assert code == 250, (code, text)
        registries.append(text.split()[-1])
    kept, withdrawn = registries
    cli = make_cli({"BARID_CONFIG": str(live.data / "barid.toml")})

    async def barid(*args: str) -> Any:
        # The CLI runs its own event loop: in a thread, beside the running gateway.
        return await asyncio.to_thread(cli, *args)

    # ---- list and show
    listed = await barid("queue", "list", "--state", "queued", "--target", "local", "--json")
    assert listed.code == 0, listed.err
    entries = {e["registry"]: e for e in json.loads(listed.out)}
    assert set(entries) == set(registries)
    assert all(e["recipient"] == MOF and e["state"] == "queued" for e in entries.values())
    kept_id, withdrawn_id = entries[kept]["id"], entries[withdrawn]["id"]
    unknown = await barid("queue", "list", "--target", "smtp:elsewhere")
    one_line_error(unknown, 2, "smtp:elsewhere", "peer:<name>")
    text_list = await barid("queue", "list")
    assert text_list.code == 0, text_list.err
    lines = text_list.out.strip().splitlines()
    assert len(lines) == 2 and all("queued" in x and "local" in x and MOF in x for x in lines)
    assert any(line.startswith(f"{kept_id}  ") and kept in line for line in lines)
    shown = await barid("queue", "show", str(kept_id), "--json")
    assert shown.code == 0, shown.err
    entry = json.loads(shown.out)
    assert entry["registry"] == kept and entry["recipient"] == MOF and entry["trace_code"]
    shown_text = await barid("queue", "show", str(kept_id))
    assert kept in shown_text.out and entry["trace_code"] in shown_text.out
    assert (await barid("queue", "list", "--state", "held", "--json")).out.strip() == "[]"

    # ---- purge: failed, and a non-delivery receipt owed with reason "withdrawn"
    purged = await barid("queue", "purge", str(withdrawn_id), "--reason", "sent by mistake")
    assert purged.code == 0, purged.err
    async with live.gateway.sessions() as session:
        row = await session.get(DeliveryQueueEntry, withdrawn_id)
        assert row is not None and row.state == "failed"
        assert row.last_error == "withdrawn by an operator: sent by mistake"
        job = await session.scalar(select(ReceiptJob).where(ReceiptJob.kind == "non-delivery"))
        assert job is not None and job.reason == "withdrawn" and job.state == "pending"
        assert job.recipient == MOF
        job_id = job.id

    # ---- hold: the worker's round does not deliver it
    held = await barid("queue", "hold", str(kept_id), "--json")
    assert held.code == 0, held.err
    assert json.loads(held.out)["state"] == "held"
    await worker.run_once()
    async with live.gateway.sessions() as session:
        row = await session.get(DeliveryQueueEntry, kept_id)
        assert row is not None and row.state == "held"
        done = await session.get(ReceiptJob, job_id)
        assert done is not None and done.state == "done"  # the purge's receipt is rendered
    assert gauge("barid_queue_depth", "local") == 1.0
    assert gauge("barid_queue_oldest_seconds", "local") >= 0.0
    one_line_error(await barid("queue", "hold", str(kept_id)), 1, "held", str(kept_id))

    # ---- release: delivered by the next round
    released = await barid("queue", "release", str(kept_id))
    assert released.code == 0, released.err
    assert "queued" in released.out
    await worker.run_once()
    async with live.gateway.sessions() as session:
        row = await session.get(DeliveryQueueEntry, kept_id)
        assert row is not None and row.state == "delivered"
    await worker.run_once()
    assert gauge("barid_queue_depth", "local") == 0.0

    # ---- refusals change nothing
    one_line_error(await barid("queue", "retry", str(kept_id)), 1, "delivered", str(kept_id))
    one_line_error(await barid("queue", "purge", str(withdrawn_id), "--reason", "x"), 1, "failed")
    one_line_error(await barid("queue", "release", "999999"), 1, "999999")
    one_line_error(await barid("queue", "show", "999999"), 1, "999999")
    json_error = await barid("queue", "retry", "999999", "--json")
    assert json_error.code == 1 and json.loads(json_error.out)["ok"] is False
    one_line_error(await barid("queue", "purge", str(kept_id)), 2, "--reason")
    one_line_error(await barid("queue", "purge", str(kept_id), "--reason", "  "), 2, "reason")

    # ---- audited, and the chain is intact
    for action, registry in [("queue.purge", withdrawn), ("queue.hold", kept),
                             ("queue.release", kept)]:  # fmt: skip
        log = await barid("audit", "log", "--action", action, "--json")
        events = json.loads(log.out)
        assert len(events) == 1 and events[0]["target"] == registry, events
        assert MOF in json.dumps(events[0])
    purge_event = json.loads((await barid("audit", "log", "--action", "queue.purge", "--json")).out)
    assert "sent by mistake" in json.dumps(purge_event)
    retries = json.loads((await barid("audit", "log", "--action", "queue.retry", "--json")).out)
    assert retries == []
    verified = await barid("audit", "verify", "--json")
    assert verified.code == 0 and json.loads(verified.out)["ok"], verified.out

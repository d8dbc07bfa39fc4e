"""`barid audit verify | checkpoint | export | verify --archive` from the real CLI, on
data directories made by `barid init` (their own real keys), tampered with directly
in the database or in the exported files."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import delete, update

from admin.context import open_app
from gateway.config import load_settings
from gateway.store import audit
from gateway.store.audit_checkpoints import b64url, signed_payload
from gateway.store.db import transaction
from gateway.store.models import AuditCheckpoint, AuditEvent, AuditHead
from gateway.verification.service import public_key_b64url
from keys.gateway_keys import key_id, load_gateway_keys
from testkit.cli import ok, refused


def fails(result: Any, *words: str) -> str:
    return refused(result, *words, code=1)


def in_app(cli: Any, work: Callable[[Any, Any], Any]) -> None:
    """Run `work(session, app)` in one transaction on the CLI's own gateway."""

    async def go() -> None:
        settings = load_settings(None, environ=cli.env)
        async with open_app(settings) as app, transaction(app.sessions) as session:
            await work(session, app)

    asyncio.run(go())


def activity(cli: Any, n: int = 40) -> None:
    ok(cli("agency", "add", "MOH", "--name-en", "Health", "--kind", "ministry",
           "--domain", "moh.gov.example"))  # fmt: skip
    events = [audit.Event(actor="imap", action="message.access", target=f"MOH/2026/{i:06}")
              for i in range(n)]  # fmt: skip
    in_app(cli, lambda s, app: audit.append_many(s, app.audit_key, events))


def test_fresh_init_and_ordinary_activity_stay_green(barid_any: Any) -> None:
    cli = barid_any
    fresh = ok(cli("audit", "verify", "--json"))
    assert fresh == {"ok": True, "events": 0, "checkpoints": 0, "head_sealed": True,
                     "problems": [], "staged": 0}  # fmt: skip
    assert ok(cli("audit", "verify")) == (
        "audit chain intact: 0 events, 0 signed checkpoint(s), head sealed\n"
    )
    activity(cli)
    signed = ok(cli("audit", "checkpoint", "--json"))
    assert signed["event_id"] == 42 and signed["count"] == 42 and signed["node"] == "localhost"
    activity_after = ok(cli("employee", "add", "a@moh.gov.example", "--agency", "MOH",
                            "--name-en", "A", "--json"))  # fmt: skip
    assert activity_after["address"] == "a@moh.gov.example"
    verified = ok(cli("audit", "verify", "--json"))
    assert verified["ok"] and verified["events"] == 43 and verified["checkpoints"] == 1
    ok(cli("init", "--data-dir", str(Path(cli.env["BARID_CONFIG"]).parent)))  # idempotent
    assert ok(cli("audit", "verify", "--json"))["events"] == 43


def test_the_defect_deleting_the_newest_31_and_rewriting_the_head(barid: Any) -> None:
    activity(barid)  # 41 events
    assert ok(barid("audit", "verify", "--json"))["ok"]

    async def truncate(session: Any, _app: Any) -> None:
        kept = await session.get(AuditEvent, 10)
        await session.execute(delete(AuditEvent).where(AuditEvent.id > 10))
        await session.execute(
            update(AuditHead).values(last_id=kept.id, last_mac=kept.mac, count=kept.id)
        )

    in_app(barid, truncate)
    fails(barid("audit", "verify"), "audit chain broken: 1 problem(s)", "head MAC mismatch")
    result = barid("audit", "verify", "--json")
    assert result.code == 1
    body = json.loads(result.out)  # one JSON object
    assert body["ok"] is False and body["events"] == 10
    assert body["problems"] == [
        "audit head MAC mismatch: the head row was rewritten without the audit key"
    ]


def test_a_forged_checkpoint_is_reported(barid: Any) -> None:
    activity(barid, 5)
    ok(barid("audit", "checkpoint"))

    async def forge(session: Any, _app: Any) -> None:
        await session.execute(update(AuditCheckpoint).values(count=3))

    in_app(barid, forge)
    fails(barid("audit", "verify"), "checkpoint at event 7: bad signature")


def test_checkpoint_needs_an_initialised_gateway(tmp_path: Path, make_cli: Any) -> None:
    cli = make_cli({"BARID_SERVER__DATA_DIR": str(tmp_path / "nothing")})
    fails(cli("audit", "checkpoint"), "barid init")


# ---------------------------------------------------------------- archives


def exported(cli: Any, tmp_path: Path) -> Path:
    activity(cli, 30)
    ok(cli("audit", "checkpoint"))  # event 32
    activity_more = [audit.Event(actor="t", action="test.event") for _ in range(5)]
    in_app(cli, lambda s, app: audit.append_many(s, app.audit_key, activity_more))
    dest = tmp_path / "archive"
    report = ok(cli("audit", "export", "--since", "2000-01-01", str(dest), "--json"))
    assert (report["first_event"], report["end_event"], report["events"]) == (1, 38, 38)
    assert report["checkpoints"] == 2
    return dest


def signing_key(cli: Any) -> tuple[Ed25519PrivateKey, str]:
    keys = load_gateway_keys(Path(cli.env["BARID_CONFIG"]).parent / "keys")
    return keys.signing_key, keys.signing_key_id


def resign(root: Path, key: Ed25519PrivateKey, kid: str, **changes: Any) -> None:
    """What someone holding the signing key could do: fix the hashes and re-sign."""
    import hashlib

    manifest = json.loads((root / "manifest.json").read_bytes())
    manifest.update(changes)
    manifest["parts"] = {
        name: hashlib.sha256((root / name).read_bytes()).hexdigest()
        for name in ("events.jsonl", "checkpoints.jsonl", "keys.json")
    }
    raw = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
    (root / "manifest.json").write_bytes(raw)
    sig = {"alg": "Ed25519", "key_id": kid, "signature": b64url(key.sign(raw))}
    (root / "manifest.sig").write_text(json.dumps(sig))


def edit_lines(path: Path, change: Callable[[list[dict[str, Any]]], list[dict[str, Any]]]) -> None:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    path.write_text("".join(json.dumps(r) + "\n" for r in change(rows)))


def test_export_then_verify_offline(barid: Any, tmp_path: Path) -> None:
    dest = exported(barid, tmp_path)
    assert sorted(p.name for p in dest.iterdir()) == [
        "checkpoints.jsonl", "events.jsonl", "keys.json", "manifest.json", "manifest.sig",
    ]  # fmt: skip
    assert all(p.stat().st_mode & 0o077 == 0 for p in dest.iterdir())
    # offline: no configuration, no database, no key
    shutil.rmtree(Path(barid.env["BARID_CONFIG"]).parent)
    checked = ok(barid("audit", "verify", "--archive", str(dest), "--json"))
    assert checked["ok"] and checked["events"] == 38 and checked["checkpoints"] == 2
    assert checked["first_event"] == 1 and checked["end_event"] == 38
    assert "cannot be checked offline" in checked["note"]
    text = ok(barid("audit", "verify", "--archive", str(dest)))
    assert text.startswith("audit archive intact: events 1..38 (38 events), 2 signed")


def _drop_event(n: int) -> Callable[[list[dict[str, Any]]], list[dict[str, Any]]]:
    return lambda rows: [r for r in rows if r["id"] != n]


def _set(n: int, **values: Any) -> Callable[[list[dict[str, Any]]], list[dict[str, Any]]]:
    return lambda rows: [{**r, **values} if r.get("id", r.get("event_id")) == n else r
                         for r in rows]  # fmt: skip


TAMPERING: dict[str, tuple[Callable[[Path, Any], None], str]] = {
    "events edited": (
        lambda d, k: edit_lines(d / "events.jsonl", _set(5, target="someone else")),
        "events.jsonl: SHA-256 does not match",
    ),
    "checkpoints edited": (
        lambda d, k: edit_lines(
            d / "checkpoints.jsonl", lambda rs: [{**r, "count": 1} for r in rs]
        ),
        "checkpoints.jsonl: SHA-256 does not match",
    ),
    "keys replaced": (
        lambda d, k: (d / "keys.json").write_text('{"keys": []}'),
        "manifest: signed with an unknown key",
    ),
    "manifest edited": (
        lambda d, k: (d / "manifest.json").write_text(
            (d / "manifest.json").read_text().replace('"end_event": 38', '"end_event": 37')
        ),
        "manifest: bad signature",
    ),
    "signature edited": (
        lambda d, k: (d / "manifest.sig").write_text(
            json.dumps({**json.loads((d / "manifest.sig").read_text()), "signature": "AAAA"})
        ),
        "manifest: bad signature",
    ),
    "part missing": (lambda d, k: (d / "checkpoints.jsonl").unlink(), "checkpoints.jsonl: missing"),
    "manifest missing": (lambda d, k: (d / "manifest.json").unlink(), "manifest.json: missing"),
    "extra part": (lambda d, k: (d / "more.jsonl").write_text("{}\n"), "more.jsonl: not part"),
    # Re-signed with the real key: the deeper checks still find it.
    "middle event dropped, re-signed": (
        lambda d, k: (edit_lines(d / "events.jsonl", _drop_event(20)), resign(d, *k, events=37)),
        "event 20: missing",
    ),
    "tail dropped, re-signed": (
        lambda d, k: (edit_lines(d / "events.jsonl", _drop_event(38)), resign(d, *k, events=37)),
        "events end at 37, the manifest declares 38",
    ),
    "link broken, re-signed": (
        lambda d, k: (edit_lines(d / "events.jsonl", _set(9, prev_mac="1" * 64)), resign(d, *k)),
        "event 9: does not follow",
    ),
    "checkpointed MAC changed, re-signed": (
        lambda d, k: (edit_lines(d / "events.jsonl", _set(32, mac="2" * 64)), resign(d, *k)),
        "checkpoint at event 32: the event has another MAC",
    ),
    "checkpoint forged, re-signed": (
        lambda d, k: (edit_lines(d / "checkpoints.jsonl", _set(32, count=31)), resign(d, *k)),
        "checkpoint at event 32: bad signature",
    ),
    "checkpoint dropped, re-signed": (
        lambda d, k: (
            edit_lines(d / "checkpoints.jsonl", lambda rs: rs[1:]),
            resign(d, *k, checkpoints=1),
        ),
        "event 32: its signed checkpoint is missing",
    ),
}


@pytest.mark.parametrize("case", list(TAMPERING))
def test_tampering_with_an_archive_is_detected(barid: Any, tmp_path: Path, case: str) -> None:
    dest = exported(barid, tmp_path)
    tamper, expected = TAMPERING[case]
    tamper(dest, signing_key(barid))
    line = fails(barid("audit", "verify", "--archive", str(dest)), "audit archive broken")
    result = barid("audit", "verify", "--archive", str(dest), "--json")
    assert result.code == 1
    problems = json.loads(result.out)["problems"]
    assert any(expected in p for p in problems), (line, problems)


def test_an_archive_re_signed_with_another_key_fails_against_the_published_keys(
    barid: Any, tmp_path: Path
) -> None:
    dest = exported(barid, tmp_path)
    published = tmp_path / "published-keys.json"
    shutil.copy(dest / "keys.json", published)
    # Someone without the gateway's signing key rewrites everything with a key of their own.
    own = Ed25519PrivateKey.generate()
    kid = key_id(own.public_key())
    (dest / "keys.json").write_text(json.dumps(
        {"keys": [{"kid": kid, "alg": "Ed25519", "public_key": public_key_b64url(own.public_key())}]}
    ))  # fmt: skip

    def resigned(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for r in rows:
            facts = {k: r[k] for k in ("event_id", "event_mac", "count", "at", "node")}
            payload = signed_payload(**facts, key_id=kid)
            out.append({**r, "key_id": kid, "signature": b64url(own.sign(payload))})
        return out

    edit_lines(dest / "checkpoints.jsonl", resigned)
    resign(dest, own, kid)
    alone = ok(barid("audit", "verify", "--archive", str(dest), "--json"))
    assert alone["key_ids"] == [kid]  # intact in itself, but not the gateway's key
    fails(
        barid("audit", "verify", "--archive", str(dest), "--keys", str(published)),
        "signed with an unknown key",
    )


def test_export_refusals_are_one_line(barid: Any, tmp_path: Path) -> None:
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "x").write_text("x")
    fails(barid("audit", "export", "--since", "1d", str(busy)), "not an empty directory")
    assert barid("audit", "export", "--since", "yesterday", str(tmp_path / "a")).code == 2
    assert not (tmp_path / "a").exists()
    fails(barid("audit", "verify", "--archive", str(tmp_path / "nothing")), "not an archive")
    assert barid("audit", "verify", "--keys", str(busy / "x")).code == 2

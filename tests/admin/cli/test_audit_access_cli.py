"""`barid audit access`: who fetched which official message, from the real CLI."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

from admin.context import open_app
from gateway.config import load_settings
from gateway.store import audit
from gateway.store.access_trail import ACCESS_ACTION
from gateway.store.db import transaction
from testkit.cli import ok, refused

MINISTER = "minister@moh.gov.xx"
CLERK = "clerk@moh.gov.xx"
REG_A = "MOH/2026/000042"
REG_B = "MOH/2026/000043"
LINE = re.compile(
    r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ  (\S+) +(\S+) +(trace=\S+(?: \(\w+ copy\))?) +"
    r"(\S+) (\S+) +(\S+) uid=(\S+) +node=(\S+) +(.+)"
)


def fails(result: Any, code: int, *words: str) -> str:
    return refused(result, *words, code=code)


def access(
    actor: str, registry: str, trace: str | None, *, uid: int, protocol: str = "imaps"
) -> audit.Event:
    return audit.Event(
        actor=actor,
        action=ACCESS_ACTION,
        target=registry,
        details={
            "trace": trace,
            "copy": "recipient" if trace else "sender",
            "protocol": protocol,
            "client": "127.0.0.1",
            "mailbox": "INBOX" if trace else "Sent",
            "uid": uid,
            "items": ["BODY[]"],
        },
    )


def insert(cli: Any, *events: audit.Event) -> None:
    """Append events the way the IMAP server does: into the gateway's own chain."""

    async def go() -> None:
        settings = load_settings(None, environ=cli.env)
        async with open_app(settings) as app, transaction(app.sessions) as session:
            await audit.append_many(session, app.audit_key, list(events))

    asyncio.run(go())


def seed(cli: Any) -> int:
    """Three accesses among other events; returns the audit event count afterwards."""
    before = ok(cli("audit", "verify", "--json"))["events"]
    insert(
        cli,
        audit.Event(actor="smtp:submission", action="message.accept", target=REG_A,
                    details={"trace": "7Q4MZ-K2D9X"}),
        access(MINISTER, REG_A, "7Q4MZ-K2D9X", uid=3),
        access(CLERK, REG_B, "ABCDE-FGH12", uid=5, protocol="imap"),
        audit.Event(actor=MINISTER, action="employee.set-password", target=MINISTER),
        access("sender@moh.gov.xx", REG_A, None, uid=1),
    )  # fmt: skip
    return int(before) + 5


def test_lists_accesses_as_text_and_json(barid_any: Any) -> None:
    cli = barid_any
    events = seed(cli)
    text = ok(cli("audit", "access"))
    lines = text.rstrip("\n").split("\n")
    assert len(lines) == 4 and lines[-1] == "3 accesses"
    parsed = [LINE.fullmatch(line) for line in lines[:3]]
    assert all(parsed), lines
    node = audit.node()  # the CLI's node: server.node_id, else this host's name
    assert [m.groups() for m in parsed if m] == [
        (MINISTER, REG_A, "trace=7Q4MZ-K2D9X", "imaps", "127.0.0.1", "INBOX", "3", node, "BODY[]"),
        (CLERK, REG_B, "trace=ABCDE-FGH12", "imap", "127.0.0.1", "INBOX", "5", node, "BODY[]"),
        ("sender@moh.gov.xx", REG_A, "trace=- (sender copy)", "imaps", "127.0.0.1", "Sent", "1",
         node, "BODY[]"),
    ]  # fmt: skip
    assert lines[0].split("  ")[1:3] == [MINISTER, REG_A]  # two-space separated columns

    rows = ok(cli("audit", "access", "--json"))
    assert isinstance(rows, list) and len(rows) == 3
    first = rows[0]
    assert first == {
        "at": first["at"], "employee": MINISTER, "registry": REG_A, "trace": "7Q4MZ-K2D9X",
        "copy": "recipient", "protocol": "imaps", "client": "127.0.0.1", "mailbox": "INBOX",
        "uid": 3, "items": ["BODY[]"], "event_id": first["event_id"], "node": node,
    }  # fmt: skip
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", first["at"])
    assert [r["event_id"] for r in rows] == sorted(r["event_id"] for r in rows)
    assert rows[2]["trace"] is None and rows[2]["copy"] == "sender"
    assert lines[0].startswith(first["at"][:19] + "Z  ")
    # --json before the group works too (common options)
    assert ok(cli("--json", "audit", "access")) == rows

    verified = ok(cli("audit", "verify", "--json"))
    assert verified["ok"] and verified["events"] == events


def test_filters(barid: Any) -> None:
    seed(barid)

    def registries(*args: str) -> list[tuple[str, str]]:
        rows = ok(barid("audit", "access", "--json", *args))
        return [(r["employee"], r["registry"]) for r in rows]

    assert registries("--registry", "moh/2026/000042") == [
        (MINISTER, REG_A), ("sender@moh.gov.xx", REG_A),
    ]  # fmt: skip
    assert registries("--employee", "Clerk@MOH.gov.xx") == [(CLERK, REG_B)]
    assert registries("--trace", "7Q4MZ-K2D9X") == [(MINISTER, REG_A)]
    assert registries("--trace", "7q4mz k2d9x") == [(MINISTER, REG_A)]  # as typed from paper
    assert registries("--registry", REG_A, "--employee", MINISTER) == [(MINISTER, REG_A)]
    assert registries("--registry", REG_B, "--trace", "7Q4MZ-K2D9X") == []
    assert registries("--since", "1h") == registries()
    assert registries("--since", "2000-01-01") == registries()
    assert registries("--since", "2999-01-01T00:00:00Z") == []
    assert registries("--limit", "1") == [("sender@moh.gov.xx", REG_A)]
    assert registries("--limit", "2", "--employee", MINISTER) == [(MINISTER, REG_A)]

    one = ok(barid("audit", "access", "--limit", "1"))
    assert one.rstrip().endswith("1 access (the newest 1; raise --limit to see older ones)")
    assert ok(barid("audit", "access", "--registry", "MOH/2026/999999")) == (
        "no accesses recorded\n"
    )
    assert ok(barid("audit", "access", "--since", "2999-01-01", "--json")) == []


def test_empty_trail(barid: Any) -> None:
    assert ok(barid("audit", "access")) == "no accesses recorded\n"
    assert ok(barid("audit", "access", "--json")) == []


def test_usage_errors_exit_2_with_one_line(barid: Any) -> None:
    seed(barid)
    before = ok(barid("audit", "verify", "--json"))["events"]
    line = fails(barid("audit", "access", "--since", "yesterday"), 2, "--since", "yesterday")
    assert "30m, 24h or 7d" in line
    fails(barid("audit", "access", "--since", "2026-13-01"), 2, "--since")
    fails(barid("audit", "access", "--since", "5y"), 2, "--since")
    result = barid("audit", "access", "--since", "soon", "--json")
    fails(result, 2, "--since")
    assert json.loads(result.out)["ok"] is False and "--since" in json.loads(result.out)["error"]
    fails(barid("audit", "access", "--limit", "0"), 2, "--limit")
    fails(barid("audit", "access", "--limit", "many"), 2, "--limit")
    fails(barid("audit", "access", "--registry", " "), 2, "--registry")
    fails(barid("audit", "access", "--bogus"), 2)
    verified = ok(barid("audit", "verify", "--json"))
    assert verified["ok"] and verified["events"] == before


def test_before_init_explains(tmp_path: Any, make_cli: Any) -> None:
    cli = make_cli({"BARID_SERVER__DATA_DIR": str(tmp_path / "nothing")})
    fails(cli("audit", "access"), 1, "barid init")


def test_help_describes_the_command(barid: Any) -> None:
    text = " ".join(ok(barid("audit", "access", "--help")).split())
    for word in ["--registry", "--employee", "--trace", "--since", "--limit", "--json",
                 "--config", "24h", "ISO 8601", "trace code"]:  # fmt: skip
        assert word in text, word
    assert "access" in ok(barid("audit", "--help"))

"""`barid leak trace|verify-case` from the real CLI on SQLite: the ten-recipient world
of testkit.leak_world; a typed code, a copy's .eml and the document each answer;
bad input (an unreadable photo too) is one line and exit 1; a case file verifies offline and a tampered one
does not."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from admin.context import open_app
from gateway.config import load_settings
from gateway.store.blobs import BLOB_KEK_PURPOSE, BlobCipher
from gateway.store.readers import MessageReader
from keys.gateway_keys import derive_key
from testkit.leak_world import RECIPIENTS, leak_world, misread


def _world(cli: Any, tmp_path: Path) -> tuple[str, dict[str, str], Path]:
    """(registry, codes by recipient, the first recipient's copy as an .eml)."""

    async def go() -> tuple[str, dict[str, str], Path]:
        async with open_app(load_settings(None, environ=cli.env)) as app:
            world = await leak_world(app)
            cipher = BlobCipher(derive_key(app.keys.master_key, BLOB_KEK_PURPOSE))
            raw = await MessageReader(app.sessions, cipher).load_copy(world.copy_ids[RECIPIENTS[0]])
        (tmp_path / "letter.pdf").write_bytes(world.document)
        (tmp_path / "leaked.eml").write_bytes(raw)
        return world.registry, world.codes, tmp_path / "leaked.eml"

    return asyncio.run(go())


def _fails(result: Any, *words: str) -> None:
    assert result.code == 1, (result.code, result.out, result.err)
    line = result.err.strip()
    assert line.startswith("barid: no copy matches") and "\n" not in line, result.err
    assert "Traceback" not in result.err
    for word in words:
        assert word in line, line


def test_trace_and_case_file(barid: Any, tmp_path: Path) -> None:
    cli = barid
    registry, codes, eml = _world(cli, tmp_path)
    for recipient, code in codes.items():
        result = cli("leak", "trace", misread(code), "--json")
        assert result.code == 0, result.err
        trace = json.loads(result.out)["trace"]
        assert [c["recipient"] for c in trace["copies"]] == [recipient]
    result = cli("leak", "trace", str(eml))
    assert result.code == 0, result.err
    assert f"message   {registry}" in result.out and RECIPIENTS[0] in result.out
    assert "verified  byte-identical" in result.out
    result = cli("leak", "trace", str(tmp_path / "letter.pdf"))
    assert result.code == 0, result.err
    assert all(r in result.out for r in RECIPIENTS) and "cannot name the recipient" in result.out

    _fails(cli("leak", "trace", "not-a-code"), "not a trace code")
    (tmp_path / "x.txt").write_bytes(b"nothing")
    _fails(cli("leak", "trace", str(tmp_path / "x.txt")), "no stored document")
    (tmp_path / "page.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"smudged" * 40)
    _fails(cli("leak", "trace", str(tmp_path / "page.jpg")), "the image cannot be read")

    case = tmp_path / "case"
    result = cli("leak", "trace", misread(codes[RECIPIENTS[1]]), "--case-file", str(case))
    assert result.code == 0, result.err and "case file written" in result.out
    answer = json.loads((case / "case.json").read_text())
    assert answer["answer"]["copies"][0]["recipient"] == RECIPIENTS[1]
    assert len(answer["input"]["sha256"]) == 64 and answer["created_at"]
    result = cli("leak", "verify-case", str(case))
    assert result.code == 0, result.err
    assert result.out.startswith("case file intact")
    keys = tmp_path / "keys.json"
    keys.write_bytes((case / "keys.json").read_bytes())
    assert cli("leak", "verify-case", str(case), "--keys", str(keys)).code == 0
    tampered = (case / "case.json").read_text().replace(RECIPIENTS[1], RECIPIENTS[2])
    (case / "case.json").write_text(tampered)
    result = cli("leak", "verify-case", str(case))
    assert result.code == 1 and "bad signature" in result.err and "Traceback" not in result.err

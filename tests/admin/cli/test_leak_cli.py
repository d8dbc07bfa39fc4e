"""`barid leak trace|verify-case` from the real CLI on SQLite: the ten-recipient world
of testkit.leak_world; a typed code, a copy's .eml and the document each answer;
bad input (an unreadable photo too) is one line and exit 1; a case file (case.json and its PDF
summary case.pdf) verifies offline, and a tampered case.json or case.pdf does not."""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

from admin.context import open_app
from gateway.config import load_settings
from gateway.store.blobs import BLOB_KEK_PURPOSE, BlobCipher
from gateway.store.readers import MessageReader
from keys.gateway_keys import derive_key
from testkit.leak_world import RECIPIENTS, leak_world, misread
from testkit.tools import require_tool


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


def _check_summary(cli: Any, case: Path, registry: str, code: str, tmp_path: Path) -> None:
    """case.pdf renders, names the message and copy in both languages, is listed in the
    signed case.json, and a changed or missing case.pdf fails verify-case."""
    pdftoppm, pdftotext = require_tool("pdftoppm"), require_tool("pdftotext")
    summary = case / "case.pdf"
    listed = json.loads((case / "case.json").read_text())["files"]
    assert listed == {"case.pdf": hashlib.sha256(summary.read_bytes()).hexdigest()}
    subprocess.run([pdftoppm, "-r", "40", "-png", str(summary), str(tmp_path / "summary")],
                   check=True)  # fmt: skip
    assert 1 <= len(list(tmp_path.glob("summary-*.png"))) <= 3
    text = subprocess.run([pdftotext, str(summary), "-"], check=True, capture_output=True,
                          text=True).stdout  # fmt: skip
    assert registry in text and code in text and RECIPIENTS[1] in text
    assert "Leak case file summary" in text and "ملخص ملف قضية تسريب" in text
    assert "سلسلة الحيازة" in text and "198.51.100." in text  # the custody table
    copy = tmp_path / "case-copy"
    shutil.copytree(case, copy)
    data = bytearray(summary.read_bytes())
    at = data.index(b"/Title")
    data[at + 8] ^= 1  # one bit of the PDF's title
    (copy / "case.pdf").write_bytes(bytes(data))
    result = cli("leak", "verify-case", str(copy))
    assert result.code == 1 and "case.pdf: changed since the case file was signed" in result.err
    (copy / "case.pdf").unlink()
    result = cli("leak", "verify-case", str(copy))
    assert result.code == 1 and "case.pdf: cannot read" in result.err


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
    assert result.out.startswith("case file intact: case.json and case.pdf signed by key")
    _check_summary(cli, case, registry, codes[RECIPIENTS[1]], tmp_path)
    keys = tmp_path / "keys.json"
    keys.write_bytes((case / "keys.json").read_bytes())
    assert cli("leak", "verify-case", str(case), "--keys", str(keys)).code == 0
    tampered = (case / "case.json").read_text().replace(RECIPIENTS[1], RECIPIENTS[2])
    (case / "case.json").write_text(tampered)
    result = cli("leak", "verify-case", str(case))
    assert result.code == 1 and "bad signature" in result.err and "Traceback" not in result.err

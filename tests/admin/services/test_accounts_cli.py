"""`barid admin ...` end to end on SQLite and PostgreSQL: grant, list, revoke, TOTP
enrolment (QR file, confirmation with a pyotp code), tokens; errors are one line."""

from __future__ import annotations

import io
import json
import stat
from pathlib import Path
from typing import Any

import pyotp
import zxingcpp
from PIL import Image

from testkit.cli import AGENCY_MOH, ok
from testkit.cli import refused as fails

AGENCY = AGENCY_MOH
ADDRESS = "karim@moh.gov.example"




def test_admin_commands_round_trip(barid_any: Any, tmp_path: Path) -> None:
    cli = barid_any
    ok(cli(*AGENCY))
    ok(cli("employee", "add", ADDRESS, "--agency", "MOH", "--name-en", "Karim"))

    granted = ok(cli("admin", "grant", ADDRESS, "agency-admin", "--agency", "moh", "--json"))
    assert (granted["role"], granted["agency"]) == ("agency-admin", "MOH")
    assert granted["granted_by"].startswith("cli:")
    assert "granted security-auditor to" in ok(cli("admin", "grant", ADDRESS, "security-auditor"))
    listed = ok(cli("admin", "list", "--json"))
    assert [(g["role"], g["agency"]) for g in listed] == [
        ("agency-admin", "MOH"), ("security-auditor", None),
    ]  # fmt: skip
    assert "agency-admin" in ok(cli("admin", "list"))

    qr = tmp_path / "karim.png"
    enrolled = ok(cli("admin", "totp", "enrol", ADDRESS, "--qr", str(qr), "--json"))
    assert stat.S_IMODE(qr.stat().st_mode) == 0o600
    found = zxingcpp.read_barcodes(Image.open(io.BytesIO(qr.read_bytes())))
    assert [b.text for b in found] == [enrolled["uri"]]
    assert len(enrolled["recovery_codes"]) == 10
    totp = pyotp.parse_uri(enrolled["uri"])
    fails(cli("admin", "totp", "confirm", ADDRESS, "12345"), "does not match")
    assert "TOTP confirmed" in ok(cli("admin", "totp", "confirm", ADDRESS, totp.now()))
    assert ok(cli("admin", "totp", "status", ADDRESS, "--json"))["totp"] == "confirmed"
    fails(cli("admin", "totp", "enrol", ADDRESS, "--qr", str(qr)), "exists")
    svg = tmp_path / "again.svg"
    text = ok(cli("admin", "totp", "enrol", ADDRESS, "--qr", str(svg)))
    assert "otpauth://totp/" in text and "recovery codes" in text
    assert "<svg" in svg.read_text()
    codes = ok(cli("admin", "totp", "recovery-codes", ADDRESS, "--json"))["recovery_codes"]
    assert len(codes) == 10

    made = ok(cli("admin", "token", "create", "--role", "registrar", "--agency", "MOH",
                  "--name", "tracker", "--expires-days", "7", "--json"))  # fmt: skip
    assert made["secret"].startswith("barid_")
    text = ok(cli("admin", "token", "create", "--role", "security-auditor", "--name", "siem"))
    assert "secret (shown once" in text
    tokens = ok(cli("admin", "token", "list", "--json"))
    assert [t["name"] for t in tokens] == ["tracker", "siem"]
    assert all("secret" not in t for t in tokens)
    assert made["secret"] not in cli("admin", "token", "list").out
    assert "revoked token" in ok(cli("admin", "token", "revoke", str(made["id"])))
    fails(cli("admin", "token", "revoke", str(made["id"])), "already revoked")
    fails(cli("admin", "token", "revoke", "999"), "no API token 999")

    ok(cli("admin", "revoke", ADDRESS, "agency-admin", "--agency", "MOH"))
    fails(cli("admin", "revoke", ADDRESS, "agency-admin", "--agency", "MOH"), "does not hold")
    verified = ok(cli("audit", "verify", "--json"))
    assert verified["ok"]


def test_admin_command_errors_are_one_line(barid: Any) -> None:
    cli = barid
    ok(cli(*AGENCY))
    fails(cli("admin", "grant", "nobody@moh.gov.example", "registrar", "--agency", "MOH"),
          "unknown employee")  # fmt: skip
    ok(cli("employee", "add", ADDRESS, "--agency", "MOH", "--name-en", "Karim"))
    fails(cli("admin", "grant", ADDRESS, "registrar"), "needs an agency")
    fails(cli("admin", "grant", ADDRESS, "system-admin", "--agency", "MOH"), "not scoped")
    fails(cli("admin", "grant", ADDRESS, "registrar", "--agency", "XYZ"), "unknown agency")
    fails(cli("admin", "grant", ADDRESS, "emperor"), "emperor")
    result = cli("admin", "token", "create", "--role", "system-admin", "--name", "x",
                 "--expires-days", "0", "--json")  # fmt: skip
    assert result.code != 0
    fails(cli("admin", "totp", "confirm", ADDRESS, "123456"), "no TOTP enrolment")
    failed = cli("admin", "grant", ADDRESS, "registrar", "--json")
    assert failed.code == 1 and json.loads(failed.out)["ok"] is False
    assert ok(cli("admin", "list", "--json")) == []

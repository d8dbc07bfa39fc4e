"""The `barid` command line, on SQLite and PostgreSQL: JSON output, errors, audit."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest

from keys.demo_material import make_openpgp_key, stop_gpg_agent
from testkit.cli import AGENCY_MOH, ok
from testkit.cli import refused as fails

AGENCY = AGENCY_MOH
PASSWORD = "correct horse battery"




def test_init_is_idempotent(tmp_path: Path, make_cli: Any) -> None:
    cli = make_cli({})
    data = tmp_path / "d"
    first = ok(cli("init", "--data-dir", str(data), "--json"))
    assert first["changed"] and any("database schema" in c for c in first["created"])
    for name in ["signing-ed25519.pem", "dkim-rsa.pem", "dkim-ed25519.pem", "master.key"]:
        assert (data / "keys" / name).stat().st_mode & 0o777 == 0o600
    assert (data / "barid.db").stat().st_mode & 0o077 == 0
    assert (data / "tls" / "cert.pem").exists()
    assert "default: deny" in (data / "policies.yaml").read_text()  # safe default: deny all
    checked = ok(
        cli(
            "policy",
            "check",
            str(data / "policies.yaml"),
            "--json",
            "--config",
            str(data / "barid.toml"),
        )
    )
    assert checked["ok"]
    snapshot = {
        p: p.read_bytes() for p in data.rglob("*") if p.is_file() and "barid.db" not in p.name
    }
    second = ok(cli("init", "--data-dir", str(data), "--json"))
    assert not second["changed"] and second["created"] == []
    assert {p: p.read_bytes() for p in snapshot} == snapshot
    text = ok(cli("init", "--data-dir", str(data)))
    assert "nothing to do" in text


def test_commands_before_init_explain_what_to_do(tmp_path: Path, make_cli: Any) -> None:
    cli = make_cli({"BARID_SERVER__DATA_DIR": str(tmp_path / "nothing")})
    fails(cli("agency", "list"), "barid init")


def test_directory_commands(barid_any: Any) -> None:
    cli = barid_any
    ok(cli(*AGENCY))
    ok(cli("agency", "add", "MOH-BGD", "--name-en", "Baghdad", "--kind", "directorate",
           "--domain", "moh.gov.example", "--parent", "MOH"))  # fmt: skip
    agencies = ok(cli("agency", "list", "--json"))
    assert [a["code"] for a in agencies] == ["MOH", "MOH-BGD"]
    shown = ok(cli("agency", "show", "MOH", "--json"))
    assert shown["subtree"]["children"][0]["code"] == "MOH-BGD"
    assert "MOH-BGD" in ok(cli("agency", "show", "MOH"))

    added = ok(cli("employee", "add", "Karim@moh.gov.example", "--agency", "MOH", "--name-en", "Karim",
                   "--clearance", "secret", "--role", "minister", "--password-stdin", "--json",
                   stdin=PASSWORD + "\n"))  # fmt: skip
    assert added["code"].startswith("MOH-000001-") and added["has_password"]
    text = ok(cli("employee", "add", "b@moh.gov.example", "--agency", "MOH-BGD", "--name-en", "B"))
    assert "MOH-BGD-000001-" in text
    listed = ok(cli("employee", "list", "--agency", "MOH", "--json"))
    assert [e["address"] for e in listed] == ["karim@moh.gov.example"]
    ok(cli("employee", "suspend", "karim@moh.gov.example"))
    assert ok(cli("employee", "show", "karim@moh.gov.example", "--json"))["status"] == "suspended"
    fails(cli("employee", "suspend", "karim@moh.gov.example"), "already suspended")
    ok(cli("employee", "set-password", "b@moh.gov.example", "--password-stdin", stdin=PASSWORD))
    fails(cli("employee", "set-password", "b@moh.gov.example", "--password-stdin", stdin="short"),
          "password")  # fmt: skip
    verified = ok(cli("audit", "verify", "--json"))
    assert verified["ok"] and verified["events"] == 6


def test_errors_are_one_line_and_change_nothing(barid: Any) -> None:
    ok(barid(*AGENCY))
    ok(barid("employee", "add", "a@moh.gov.example", "--agency", "MOH", "--name-en", "A"))
    before = ok(barid("audit", "verify", "--json"))["events"]
    fails(barid(*AGENCY), "already exists")
    fails(barid("employee", "add", "a@moh.gov.example", "--agency", "MOH", "--name-en", "A"),
          "already exists")  # fmt: skip
    fails(barid("agency", "add", "X1", "--name-en", "x", "--kind", "ministry", "--domain",
                "x.gov.example", "--parent", "NOPE"), "unknown agency 'NOPE'")  # fmt: skip
    fails(barid("agency", "add", "X1", "--name-en", "x", "--kind", "castle", "--domain", "x.gov.example"),
          "unknown agency kind")  # fmt: skip
    fails(barid("agency", "show", "NOPE"), "unknown agency")
    fails(barid("employee", "show", "nobody@moh.gov.example"), "unknown employee")
    result = barid("employee", "show", "nobody@moh.gov.example", "--json")
    assert json.loads(result.out) == {
        "ok": False,
        "error": "unknown employee 'nobody@moh.gov.example'",
    }
    assert result.code == 1
    assert barid("agency", "add").code == 2  # usage error
    assert ok(barid("audit", "verify", "--json"))["events"] == before


def test_agency_cycle_refused(barid: Any) -> None:
    ok(barid(*AGENCY))
    ok(barid("agency", "add", "MOH-BGD", "--name-en", "B", "--kind", "directorate",
             "--domain", "moh.gov.example", "--parent", "MOH"))  # fmt: skip
    fails(barid("agency", "set-parent", "MOH", "MOH-BGD"), "cycle")
    fails(barid("agency", "set-parent", "MOH", "MOH"), "cycle")
    assert ok(barid("agency", "show", "MOH", "--json"))["parent"] is None


@pytest.fixture
def gnupghome(need_tool: Any) -> Any:
    need_tool("gpg")
    home = Path(tempfile.mkdtemp(prefix="g", dir="/tmp"))
    yield home
    stop_gpg_agent(home)
    shutil.rmtree(home, ignore_errors=True)


def test_import_key(barid: Any, tmp_path: Path, gnupghome: Path) -> None:
    ok(barid(*AGENCY))
    code = ok(barid("employee", "add", "a@moh.gov.example", "--agency", "MOH", "--name-en", "A",
                    "--json"))["code"]  # fmt: skip
    ok(barid("employee", "add", "b@moh.gov.example", "--agency", "MOH", "--name-en", "B"))
    fpr, public, _secret = make_openpgp_key(gnupghome, "A", "a@moh.gov.example", code)
    key = tmp_path / "a.asc"
    key.write_bytes(public)
    result = ok(barid("employee", "import-key", "a@moh.gov.example", str(key), "--json"))
    assert result["fingerprint"] == fpr and result["kind"] == "openpgp"
    fails(barid("employee", "import-key", "a@moh.gov.example", str(key)), "already registered")
    fails(barid("employee", "import-key", "b@moh.gov.example", str(key)))  # names a's address
    # A binary export of a key naming another address is refused too.
    _, other, _ = make_openpgp_key(gnupghome, "B", "b@moh.gov.example", code)
    binary = subprocess.run(["gpg", "--homedir", str(gnupghome), "--dearmor"], input=other,
                            capture_output=True, check=True).stdout  # fmt: skip
    key_b = tmp_path / "b.gpg"
    key_b.write_bytes(binary)
    fails(barid("employee", "import-key", "b@moh.gov.example", str(key_b)), code)  # a's code
    garbage = tmp_path / "garbage.asc"
    garbage.write_bytes(b"-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nnot a key\n")
    fails(barid("employee", "import-key", "a@moh.gov.example", str(garbage)))
    fails(barid("employee", "import-key", "a@moh.gov.example", str(tmp_path / "missing")))
    shown = ok(barid("employee", "show", "a@moh.gov.example", "--json"))
    assert [i["fingerprint"] for i in shown["identities"]] == [fpr]


def test_import_x509_certificate_made_by_openssl(
    barid: Any, tmp_path: Path, need_tool: Any
) -> None:
    need_tool("openssl")
    ok(barid(*AGENCY))
    code = ok(barid("employee", "add", "a@moh.gov.example", "--agency", "MOH", "--name-en", "A",
                    "--json"))["code"]  # fmt: skip
    cert = tmp_path / "a.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30",
         "-keyout", str(tmp_path / "a.key"), "-out", str(cert),
         "-subj", f"/CN=A/emailAddress=a@moh.gov.example/serialNumber={code}",
         "-addext", "extendedKeyUsage=emailProtection", "-addext", "basicConstraints=critical,CA:FALSE",
         "-addext", "subjectAltName=email:a@moh.gov.example"],
        check=True, capture_output=True,
    )  # fmt: skip
    result = ok(barid("employee", "import-key", "a@moh.gov.example", str(cert), "--json"))
    assert result["kind"] == "x509" and len(result["fingerprint"]) == 64
    fails(barid("employee", "import-key", "a@moh.gov.example", str(tmp_path / "a.key")), "private")


HEADER = "type,code,name_en,name_ar,kind,domain,parent,address,agency,role,clearance\n"


def write_csv(tmp_path: Path, body: str) -> str:
    path = tmp_path / "dir.csv"
    path.write_text(HEADER + body, encoding="utf-8")
    return str(path)


def test_directory_import(barid_any: Any, tmp_path: Path) -> None:
    cli = barid_any
    ok(cli(*AGENCY))
    ok(cli("employee", "add", "first@moh.gov.example", "--agency", "MOH", "--name-en", "First"))
    csv_file = write_csv(
        tmp_path,
        # children before parents, an existing agency as a parent, Arabic names
        "agency,MOE-BGD,Baghdad,مديرية بغداد,directorate,moe.gov.example,MOE,,,,\n"
        "agency,MOE,Education,وزارة التربية,ministry,moe.gov.example,,,,,\n"
        "agency,MOH-PLN,Planning,التخطيط,directorate,moh.gov.example,MOH,,,,\n"
        "employee,,Zainab,زينب,,,,zainab@moe.gov.example,MOE-BGD,clerk,internal\n"
        "employee,,Ali,علي,,,,ali@moh.gov.example,MOH,director,secret\n"
        "employee,,Sara,,,,,sara@moe.gov.example,moe,,\n",
    )
    dry = ok(cli("directory", "import", csv_file, "--dry-run", "--json"))
    assert dry["dry_run"] and dry["agencies"] == 3 and dry["employees"] == 3
    assert [a["code"] for a in ok(cli("agency", "list", "--json"))] == ["MOH"]
    done = ok(cli("directory", "import", csv_file, "--json"))
    codes = {i["address"]: i["code"] for i in done["issued"]}
    assert codes["ali@moh.gov.example"].startswith("MOH-000002-")  # after the existing employee
    assert codes["zainab@moe.gov.example"].startswith("MOE-BGD-000001-")
    assert codes["sara@moe.gov.example"].startswith("MOE-000001-")
    shown = ok(cli("agency", "show", "MOE", "--json"))
    assert shown["subtree"]["children"][0]["code"] == "MOE-BGD"
    # The counters moved on: the next employee added by hand continues the sequence.
    nxt = ok(
        cli(
            "employee", "add", "next@moh.gov.example", "--agency", "MOH", "--name-en", "N", "--json"
        )
    )
    assert nxt["code"].startswith("MOH-000003-")
    assert ok(cli("audit", "verify", "--json"))["ok"]


def test_directory_import_refuses_bad_rows_with_line_numbers(
    barid_any: Any, tmp_path: Path
) -> None:
    cli = barid_any
    ok(cli(*AGENCY))
    csv_file = write_csv(
        tmp_path,
        "agency,MOE,Education,,ministry,moe.gov.example,,,,,\n"  # line 2: fine
        "agency,MOH,Dup,,ministry,moh.gov.example,,,,,\n"  # 3: exists
        "agency,MOX,X,,castle,x.gov.example,,,,,\n"  # 4: bad kind
        "agency,MOZ,Z,,ministry,z.gov.example,NOPE,,,,\n"  # 5: unknown parent
        "employee,,A,,,,,a@moe.gov.example,MOE,clerk,top\n"  # 6: bad clearance
        "employee,,B,,,,,b@evil.example,MOE,clerk,internal\n"  # 7: outside the domain
        "employee,,C,,,,,c@moe.gov.example,NOPE,clerk,internal\n"  # 8: unknown agency
        "employee,,D,,,,,d@moe.gov.example,MOE,,\n"  # 9: fine
        "employee,,D again,,,,,D@moe.gov.example,MOE,,\n"  # 10: duplicate of line 9
        "thing,,,,,,,,,,\n",  # 11: unknown type
    )
    result = cli("directory", "import", csv_file)
    assert result.code == 1
    for line in [3, 4, 5, 6, 7, 8, 10, 11]:
        assert f"line {line}:" in result.err, (line, result.err)
    assert "line 2:" not in result.err and "line 9:" not in result.err
    assert result.err.strip().splitlines()[-1].endswith("nothing imported")
    as_json = cli("directory", "import", csv_file, "--json")
    assert len(json.loads(as_json.out)["problems"]) == 8
    assert [a["code"] for a in ok(cli("agency", "list", "--json"))] == ["MOH"]
    assert ok(cli("employee", "list", "--json")) == []


def test_directory_import_refuses_a_cycle(barid: Any, tmp_path: Path) -> None:
    csv_file = write_csv(
        tmp_path,
        "agency,AAA,A,,ministry,a.gov.example,CCC,,,,\n"
        "agency,BBB,B,,directorate,a.gov.example,AAA,,,,\n"
        "agency,CCC,C,,branch,a.gov.example,BBB,,,,\n",
    )
    result = barid("directory", "import", csv_file)
    assert result.code == 1
    assert "cycle in the agency tree: AAA -> CCC -> BBB -> AAA" in result.err
    assert result.err.strip().splitlines()[-1].endswith("nothing imported")
    assert ok(barid("agency", "list", "--json")) == []


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"\xff\xfe bad", "not UTF-8"),
        (b"name,code\nx,y\n", "bad header"),
        (b"", "missing header"),
        (b'type,"code\n', "line 1: unexpected end of data"),  # an open quote in the header
    ],
)
def test_directory_import_refuses_malformed_files(
    barid: Any, tmp_path: Path, content: bytes, reason: str
) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    result = barid("directory", "import", str(path))
    assert result.code == 1 and reason in result.err


def test_dkim_dns_prints_records_per_agency_domain(barid: Any) -> None:
    assert barid("dkim", "dns").code == 1  # no agency yet: a clear reason
    ok(barid(*AGENCY))
    records = ok(barid("dkim", "dns", "--json"))
    assert {r["name"] for r in records} == {
        "barid-rsa._domainkey.moh.gov.example",
        "barid-ed25519._domainkey.moh.gov.example",
    }
    assert all(r["value"].startswith("v=DKIM1; k=") for r in records)
    text = ok(barid("dkim", "dns", "--domain", "other.gov.example"))
    assert "barid-rsa._domainkey.other.gov.example. IN TXT" in text
    fails(barid("dkim", "dns", "--domain", "not a domain"), "invalid mail domain")

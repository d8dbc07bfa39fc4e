"""`barid dns --domain D`: every record an agency domain needs, as zone-file lines
that a DNS library parses and as JSON; the DKIM records are `barid dkim dns`'s."""

from __future__ import annotations

import json
from typing import Any

import dns.rdatatype
import dns.zone
import pytest

from gateway.http.clientconfig.model import MailEndpoints
from gateway.http.domain_dns import domain_dns, mta_sts_policy
from keys.dkim_dns import DkimRecord

ENDPOINTS = MailEndpoints(hostname="mail.gov.example", imaps_port=993, imap_port=143,
                          smtps_port=465, submission_port=587)  # fmt: skip
DKIM = [DkimRecord("barid-rsa", "moh.gov.example", "rsa", "v=DKIM1; k=rsa; p=" + "A" * 400),
        DkimRecord("barid-ed25519", "moh.gov.example", "ed25519", "v=DKIM1; k=ed25519; p=abc=")]  # fmt: skip
AGENCY = ["agency", "add", "MOH", "--name-en", "Ministry of Health", "--name-ar", "وزارة الصحة",
          "--kind", "ministry", "--domain", "moh.gov.example"]  # fmt: skip


def parsed(text: str, origin: str = "moh.gov.example.") -> dict[tuple[str, str], list[str]]:
    """(name, type) -> RDATA texts, read by dnspython as a zone file."""
    zone = dns.zone.from_text("$TTL 3600\n" + text, origin=origin, relativize=False,
                              check_origin=False)  # fmt: skip
    out: dict[tuple[str, str], list[str]] = {}
    for name, rdataset in zone.iterate_rdatasets():
        key = (name.to_text(omit_final_dot=True), dns.rdatatype.to_text(rdataset.rdtype))
        out[key] = sorted(r.to_text() for r in rdataset)
    return out


def txt(rdata: str) -> str:
    """A TXT RDATA's strings joined (as a resolver hands them to an application)."""
    return "".join(part.strip('"') for part in rdata.split('" "'))


def test_production_records_parse_as_a_zone() -> None:
    plan = domain_dns("moh.gov.example", ENDPOINTS, transfer_port=25,
                      public_url="https://mail.gov.example", dkim=DKIM,
                      reports_to="reports@moh.gov.example")  # fmt: skip
    zone = parsed(plan.zone_text())
    d = "moh.gov.example"
    assert zone[(d, "MX")] == ["10 mail.gov.example."]
    assert [txt(v) for v in zone[(d, "TXT")]] == ["v=spf1 mx -all"]
    assert txt(zone[(f"barid-rsa._domainkey.{d}", "TXT")][0]) == DKIM[0].value  # split, rejoined
    assert txt(zone[(f"barid-ed25519._domainkey.{d}", "TXT")][0]) == DKIM[1].value
    assert txt(zone[(f"_dmarc.{d}", "TXT")][0]).startswith("v=DMARC1; p=reject;")
    assert "rua=mailto:reports@moh.gov.example" in txt(zone[(f"_dmarc.{d}", "TXT")][0])
    assert (
        txt(zone[(f"_smtp._tls.{d}", "TXT")][0]) == "v=TLSRPTv1; rua=mailto:reports@moh.gov.example"
    )
    sts = txt(zone[(f"_mta-sts.{d}", "TXT")][0])
    assert sts.startswith("v=STSv1; id=") and sts[12:].isalnum() and len(sts[12:]) <= 32
    assert zone[(f"autoconfig.{d}", "CNAME")] == ["mail.gov.example."]
    assert zone[(f"autodiscover.{d}", "CNAME")] == ["mail.gov.example."]
    assert zone[(f"_autodiscover._tcp.{d}", "SRV")] == ["0 1 443 mail.gov.example."]
    assert zone[(f"_submissions._tcp.{d}", "SRV")] == ["0 1 465 mail.gov.example."]
    assert zone[(f"_submission._tcp.{d}", "SRV")] == ["10 1 587 mail.gov.example."]
    assert zone[(f"_imaps._tcp.{d}", "SRV")] == ["0 1 993 mail.gov.example."]
    assert zone[(f"_imap._tcp.{d}", "SRV")] == ["10 1 143 mail.gov.example."]
    assert zone[(f"_pop3._tcp.{d}", "SRV")] == ["0 0 0 ."]  # RFC 6186 §4: not offered
    # Nothing to warn about but the hosting the DNS cannot do.
    assert len(plan.notes) == 1 and "mta-sts.moh.gov.example" in plan.notes[0]
    assert plan.mta_sts_url == "https://mta-sts.moh.gov.example/.well-known/mta-sts.txt"
    assert plan.as_dict()["records"][0]["zone"] == "moh.gov.example. IN MX 10 mail.gov.example."


def test_mta_sts_policy_text_and_its_id() -> None:
    policy = mta_sts_policy("mail.gov.example")
    assert policy == ("version: STSv1\r\nmode: enforce\r\nmx: mail.gov.example\r\n"
                      "max_age: 604800\r\n")  # fmt: skip
    other = domain_dns("moh.gov.example", MailEndpoints("mx2.gov.example", 993, 143, 465, 587),
                       transfer_port=25, public_url="https://mail.gov.example", dkim=[],
                       reports_to="r@moh.gov.example")  # fmt: skip
    same = domain_dns("moh.gov.example", ENDPOINTS, transfer_port=25,
                      public_url="https://mail.gov.example", dkim=[], reports_to="r@moh.gov.example")  # fmt: skip
    ids = {next(r.value for r in p.records if r.name.startswith("_mta-sts")) for p in (other, same)}
    assert len(ids) == 2  # a changed policy gets a new id (RFC 8461 §3.1)


def test_development_settings_are_flagged() -> None:
    plan = domain_dns("moh.gov.example", MailEndpoints("localhost", 9930, 1430, 4650, 5870),
                      transfer_port=2525, public_url="http://localhost:8080", dkim=[],
                      reports_to="postmaster@moh.gov.example")  # fmt: skip
    notes = " | ".join(plan.notes)
    assert "server.hostname is 'localhost'" in notes
    assert "transfer listener is on 2525" in notes
    assert "not https" in notes
    zone = parsed(plan.zone_text())
    assert zone[("_autodiscover._tcp.moh.gov.example", "SRV")] == ["0 1 8080 localhost."]
    assert zone[("_imaps._tcp.moh.gov.example", "SRV")] == ["0 1 9930 localhost."]


def test_barid_dns_command(barid: Any) -> None:
    result = barid("dns", "--domain", "moh.gov.example")
    assert (
        result.code == 1
        and result.err.strip() == "barid: no agency has the mail domain moh.gov.example"
    )
    assert barid(*AGENCY).code == 0
    result = barid("dns", "--domain", "MOH.gov.example", "--json")
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert data["domain"] == "moh.gov.example"
    types = {(r["name"], r["type"]) for r in data["records"]}
    assert ("moh.gov.example", "MX") in types and ("_imaps._tcp.moh.gov.example", "SRV") in types
    assert data["mta_sts_policy"]["text"].startswith("version: STSv1\r\n")
    # The DKIM records are exactly what `barid dkim dns` prints.
    dkim = json.loads(barid("dkim", "dns", "--domain", "moh.gov.example", "--json").out)
    ours = [r for r in data["records"] if r["name"].endswith("._domainkey.moh.gov.example")]
    assert [(r["name"], r["value"], r["zone"]) for r in ours] == [
        (r["name"], r["value"], r["zone"]) for r in dkim
    ]
    text = barid("dns", "--domain", "moh.gov.example")
    assert text.code == 0
    zone = parsed(text.out)
    assert zone[("moh.gov.example", "MX")] == ["10 localhost."]
    assert all(r["zone"] in text.out for r in data["records"])


@pytest.mark.parametrize(("args", "reason"), [
    (["--domain", "not a domain"], "invalid mail domain"),
    (["--domain", "moh.gov.example", "--reports-to", "nobody"], "invalid mail address"),
])  # fmt: skip
def test_barid_dns_refuses_bad_input(barid: Any, args: list[str], reason: str) -> None:
    result = barid("dns", *args, "--json")
    assert result.code == 1 and reason in result.err and "\n" not in result.err.strip()
    assert json.loads(result.out)["ok"] is False

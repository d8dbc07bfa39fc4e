"""Every DNS record an agency mail domain needs (`barid dns --domain D`): MX, SPF,
DKIM, DMARC, MTA-STS and TLS-RPT for mail between gateways; autoconfig and
autodiscover names and RFC 6186 / RFC 8314 SRV records for employees' clients.

Owns: the records, their zone-file form and the MTA-STS policy text. Pure: the
caller passes settings and DKIM records in. Must not: read files, the database
or DNS.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from gateway.http.clientconfig.model import MailEndpoints
from keys.dkim_dns import DkimRecord

TXT_CHUNK = 255  # octets per character-string (RFC 1035 §3.3)
MTA_STS_MAX_AGE = 604800  # one week (RFC 8461 §3.2 allows up to 31557600)
SRV_PREFERRED, SRV_FALLBACK = 0, 10  # RFC 8314 §5.1: implicit TLS preferred


@dataclass(frozen=True, slots=True)
class DnsRecord:
    name: str  # fully qualified, without the final dot
    type: str
    value: str  # RDATA in presentation form; TXT: the text itself, unquoted
    purpose: str

    def zone_line(self) -> str:
        data = _quoted(self.value) if self.type == "TXT" else self.value
        return f"{self.name}. IN {self.type} {data}"

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, "type": self.type, "value": self.value,
                "purpose": self.purpose, "zone": self.zone_line()}  # fmt: skip


@dataclass(frozen=True, slots=True)
class DomainDns:
    domain: str
    records: tuple[DnsRecord, ...]
    mta_sts_url: str
    mta_sts_policy: str
    notes: tuple[str, ...] = field(default=())

    def zone_text(self) -> str:
        lines = [f"; Barid: DNS records for {self.domain}"]
        lines += [f"; note: {note}" for note in self.notes]
        purpose = ""
        for record in self.records:
            if record.purpose != purpose:
                purpose = record.purpose
                lines.append(f"; {purpose}")
            lines.append(record.zone_line())
        lines.append(f"; MTA-STS policy to serve at {self.mta_sts_url}:")
        lines += [f";   {line}" for line in self.mta_sts_policy.splitlines()]
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return {
            "domain": self.domain,
            "records": [r.as_dict() for r in self.records],
            "mta_sts_policy": {"url": self.mta_sts_url, "text": self.mta_sts_policy},
            "notes": list(self.notes),
        }


def domain_dns(
    domain: str,
    endpoints: MailEndpoints,
    *,
    transfer_port: int,
    public_url: str,
    dkim: Sequence[DkimRecord],
    reports_to: str,
) -> DomainDns:
    """The records for `domain` (already checked). `reports_to` receives DMARC and
    TLS-RPT aggregate reports; `public_url` is where the public listener is reached."""
    host = endpoints.hostname.rstrip(".").lower()
    public = urlsplit(public_url)
    public_host = (public.hostname or host).lower()
    policy = mta_sts_policy(host)
    policy_id = hashlib.sha256(policy.encode()).hexdigest()[:20]
    records = [
        DnsRecord(domain, "MX", f"10 {host}.", "mail exchanger (transfer listener)"),
        DnsRecord(domain, "TXT", "v=spf1 mx -all", "SPF"),
        *(DnsRecord(r.name, "TXT", r.value, f"DKIM ({r.algorithm})") for r in dkim),
        DnsRecord(f"_dmarc.{domain}", "TXT",
                  f"v=DMARC1; p=reject; adkim=r; aspf=r; rua=mailto:{reports_to}", "DMARC"),
        DnsRecord(f"_mta-sts.{domain}", "TXT", f"v=STSv1; id={policy_id}", "MTA-STS (RFC 8461)"),
        DnsRecord(f"_smtp._tls.{domain}", "TXT", f"v=TLSRPTv1; rua=mailto:{reports_to}",
                  "TLS-RPT (RFC 8460)"),
        DnsRecord(f"autoconfig.{domain}", "CNAME", f"{public_host}.", "client autoconfiguration"),
        DnsRecord(f"autodiscover.{domain}", "CNAME", f"{public_host}.",
                  "client autoconfiguration"),
        DnsRecord(f"_autodiscover._tcp.{domain}", "SRV",
                  f"0 1 {public.port or 443} {public_host}.", "client autoconfiguration"),
        *_client_srv(domain, endpoints, host),
    ]  # fmt: skip
    return DomainDns(
        domain=domain,
        records=tuple(records),
        mta_sts_url=f"https://mta-sts.{domain}/.well-known/mta-sts.txt",
        mta_sts_policy=policy,
        notes=tuple(_notes(domain, host, transfer_port, public.scheme)),
    )


def mta_sts_policy(mx_host: str) -> str:
    """The policy file (RFC 8461 §3.2: CRLF-separated key/value lines)."""
    lines = ["version: STSv1", "mode: enforce", f"mx: {mx_host}", f"max_age: {MTA_STS_MAX_AGE}"]
    return "\r\n".join(lines) + "\r\n"


def _client_srv(domain: str, endpoints: MailEndpoints, host: str) -> list[DnsRecord]:
    """RFC 6186 service records (RFC 8314 §5.1: implicit TLS preferred); no POP3."""
    purpose = "client service records (RFC 6186, RFC 8314)"
    srv = [
        ("_submissions._tcp", SRV_PREFERRED, endpoints.smtps_port),
        ("_submission._tcp", SRV_FALLBACK, endpoints.submission_port),
        ("_imaps._tcp", SRV_PREFERRED, endpoints.imaps_port),
        ("_imap._tcp", SRV_FALLBACK, endpoints.imap_port),
    ]
    out = [DnsRecord(f"{name}.{domain}", "SRV", f"{prio} 1 {port} {host}.", purpose)
           for name, prio, port in srv]  # fmt: skip
    # RFC 6186 §4: target "." says the service is not offered.
    out += [DnsRecord(f"{name}.{domain}", "SRV", "0 0 0 .", purpose)
            for name in ("_pop3._tcp", "_pop3s._tcp")]  # fmt: skip
    return out


def _notes(domain: str, host: str, transfer_port: int, scheme: str) -> list[str]:
    notes = []
    if "." not in host:
        notes.append(f"server.hostname is {host!r}: set it to the gateway's public DNS name")
    if transfer_port != 25:
        notes.append(f"MX means port 25 but the transfer listener is on {transfer_port}:"
                     " forward port 25 to it")  # fmt: skip
    if scheme != "https":
        notes.append("http.public_url is not https: Outlook asks autodiscover over HTTPS only")
    notes.append(
        f"the public listener's certificate must name autoconfig.{domain} and"
        f" autodiscover.{domain}; serve the MTA-STS policy at mta-sts.{domain}"
    )
    return notes


def _quoted(text: str) -> str:
    """TXT RDATA: character-strings of at most 255 octets, quoted and escaped."""
    raw = text.encode()
    chunks = [raw[i : i + TXT_CHUNK].decode() for i in range(0, len(raw), TXT_CHUNK)] or [""]
    return " ".join('"' + c.replace("\\", "\\\\").replace('"', '\\"') + '"' for c in chunks)

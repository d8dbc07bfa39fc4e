"""An employee types address and password; the client finds the rest. The test
asks the running gateway for the Thunderbird and Outlook answers and then, using
only the host, ports and TLS modes they give (the host name is mapped to
127.0.0.1; the certificate is verified against that name with the gateway's own
TLS certificate as trust anchor), logs in over IMAP and submits a signed letter
over SMTP from every server entry, and the recipient reads the letters."""

from __future__ import annotations

import asyncio
import email
import email.policy
import imaplib
import smtplib
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from defusedxml.ElementTree import fromstring

from gateway.http.clientconfig import outlook
from testkit.messages import pgp_mime

MOH = "minister@moh.gov.example"
MOF = "minister@mof.gov.example"
LOOPBACK = "127.0.0.1"
R = f"{{{outlook.OUTLOOK_NS}}}"


@dataclass(frozen=True)
class Server:
    """One server entry of an answer: what a client would use, nothing else."""

    source: str
    protocol: str  # imap | smtp
    host: str
    port: int
    implicit_tls: bool
    username: str


def thunderbird_servers(body: bytes, address: str) -> list[Server]:
    provider = fromstring(body).find("emailProvider")
    assert provider is not None
    out = []
    for entry in provider:
        if entry.tag not in ("incomingServer", "outgoingServer"):
            continue
        socket_type = entry.findtext("socketType")
        assert socket_type in ("SSL", "STARTTLS")  # never plain
        assert entry.findtext("authentication") == "password-cleartext"
        out.append(Server("thunderbird", str(entry.get("type")), str(entry.findtext("hostname")),
                          int(entry.findtext("port") or 0), socket_type == "SSL",
                          str(entry.findtext("username")).replace("%EMAILADDRESS%", address)))  # fmt: skip
    return out


def outlook_servers(body: bytes) -> list[Server]:
    account = fromstring(body).find(f"{R}Response/{R}Account")
    assert account is not None
    out = []
    for entry in account.findall(f"{R}Protocol"):
        encryption = entry.findtext(f"{R}Encryption")
        assert encryption in ("SSL", "TLS")  # SSL: implicit TLS; TLS: STARTTLS
        assert entry.findtext(f"{R}SPA") == "off" and entry.findtext(f"{R}AuthRequired") == "on"
        out.append(Server("outlook", str(entry.findtext(f"{R}Type")).lower(),
                          str(entry.findtext(f"{R}Server")), int(entry.findtext(f"{R}Port") or 0),
                          encryption == "SSL", str(entry.findtext(f"{R}LoginName"))))  # fmt: skip
    return out


def verifying_context(cafile: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(cafile))
    assert context.check_hostname and context.verify_mode == ssl.CERT_REQUIRED
    return context


class _MappedIMAP(imaplib.IMAP4):
    """imaplib with the host name resolved to the loopback address (as /etc/hosts would)."""

    def _create_socket(self, timeout: float | None) -> socket.socket:
        return socket.create_connection((LOOPBACK, self.port), timeout)


class _MappedIMAPS(imaplib.IMAP4_SSL):
    def _create_socket(self, timeout: float | None) -> socket.socket:
        raw = socket.create_connection((LOOPBACK, self.port), timeout)
        return self.ssl_context.wrap_socket(raw, server_hostname=self.host)


class _Mapped:
    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        return super()._get_socket(LOOPBACK, port, timeout)


class _MappedSMTP(_Mapped, smtplib.SMTP):
    pass


class _MappedSMTPS(_Mapped, smtplib.SMTP_SSL):
    pass


def imap_session(server: Server, password: str, context: ssl.SSLContext) -> imaplib.IMAP4:
    if server.implicit_tls:
        client: imaplib.IMAP4 = _MappedIMAPS(server.host, server.port, ssl_context=context,
                                             timeout=30)  # fmt: skip
    else:
        client = _MappedIMAP(server.host, server.port, timeout=30)
        client.starttls(context)
    sock = client.sock
    assert isinstance(sock, ssl.SSLSocket) and sock.version() in ("TLSv1.2", "TLSv1.3")
    client.login(server.username, password)
    return client


def imap_login(server: Server, password: str, context: ssl.SSLContext) -> None:
    client = imap_session(server, password, context)
    try:
        assert client.select("INBOX")[0] == "OK"
    finally:
        client.logout()


def submit(server: Server, password: str, context: ssl.SSLContext, raw: bytes) -> str:
    """Submit `raw` from MOH to MOF; the final reply's text."""
    if server.implicit_tls:
        client: smtplib.SMTP = _MappedSMTPS(server.host, server.port, context=context, timeout=30)
    else:
        client = _MappedSMTP(server.host, server.port, timeout=30)
        client.starttls(context=context)
    try:
        assert isinstance(client.sock, ssl.SSLSocket)
        client.ehlo()
        client.login(server.username, password)
        assert client.mail(MOH)[0] == 250
        assert client.rcpt(MOF)[0] == 250
        code, text = client.data(raw)
        assert code == 250, (server, code, text)
        return text.decode()
    finally:
        client.quit()


def read_registries(server: Server, password: str, context: ssl.SSLContext) -> set[str]:
    client = imap_session(server, password, context)
    try:
        client.select("INBOX", readonly=True)
        _, data = client.search(None, "ALL")
        found = set()
        for number in data[0].split():
            _, parts = client.fetch(number, "(BODY.PEEK[HEADER])")
            header = email.message_from_bytes(parts[0][1], policy=email.policy.default)
            if header["Barid-Registry"]:
                found.add(str(header["Barid-Registry"]))
        return found
    finally:
        client.logout()


async def test_clients_configure_themselves_then_read_and_send(live: Any, gnupghome: Path) -> None:
    base = f"http://127.0.0.1:{live.gateway.http_port}"
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        tb = await http.get("/.well-known/autoconfig/mail/config-v1.1.xml",
                            params={"emailaddress": MOH})  # fmt: skip
        assert tb.status_code == 200
        request = (f'<Autodiscover xmlns="{outlook.REQUEST_NS}"><Request><EMailAddress>{MOH}'
                   f"</EMailAddress><AcceptableResponseSchema>{outlook.OUTLOOK_NS}"
                   "</AcceptableResponseSchema></Request></Autodiscover>")  # fmt: skip
        ol = await http.post("/Autodiscover/Autodiscover.xml", content=request.encode())
        assert ol.status_code == 200
    servers = thunderbird_servers(tb.content, MOH) + outlook_servers(ol.content)
    assert {(s.protocol, s.implicit_tls) for s in servers} == {
        ("imap", True),
        ("imap", False),
        ("smtp", True),
        ("smtp", False),
    }
    context = verifying_context(live.gateway.settings.tls_cert)
    password = live.credentials[MOH]["password"]
    extra = [("Barid-Employee-Code", live.credentials[MOH]["code"])]

    registries = set()
    for server in servers:
        if server.protocol == "imap":
            await asyncio.to_thread(imap_login, server, password, context)
        else:
            raw = pgp_mime(gnupghome, MOH, MOH, [MOF], extra=extra)
            reply = await asyncio.to_thread(submit, server, password, context, raw)
            assert reply.startswith("2.0.0 Accepted "), reply
            registries.add(reply.split()[-1])
    assert len(registries) == 4  # two SMTP entries in each answer, one letter each

    # The recipient's own client, set up the same way, reads every letter.
    await live.settle()
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        answer = await http.get("/mail/config-v1.1.xml", params={"emailaddress": MOF})
    incoming = [s for s in thunderbird_servers(answer.content, MOF) if s.protocol == "imap"]
    received = await asyncio.to_thread(
        read_registries, incoming[0], live.credentials[MOF]["password"], context
    )
    assert registries <= received


async def test_a_wrong_name_fails_verification(live: Any) -> None:
    """The certificate really is checked: a name it does not carry is refused."""
    context = verifying_context(live.gateway.settings.tls_cert)
    wrong = Server("test", "imap", "not-the-gateway.example", live.imaps_port, True, MOH)
    try:
        await asyncio.to_thread(imap_login, wrong, "x", context)
    except ssl.SSLCertVerificationError as exc:
        assert "not-the-gateway.example" in str(exc) or "match" in str(exc)
    else:
        raise AssertionError("a certificate for another name was accepted")

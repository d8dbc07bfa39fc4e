"""Client autoconfiguration over a running gateway's public HTTP listener: the
Thunderbird, Outlook and Apple answers carry the listening ports; unknown domains
get 404; a known domain's unknown address gets what a real one gets; bad input,
hostile XML and oversized requests get clear 4xx answers and never a 5xx."""

from __future__ import annotations

import plistlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from defusedxml.ElementTree import fromstring

from gateway.http.clientconfig import outlook
from testkit.metrics import exposition

MOH = "minister@moh.gov.example"
NOBODY = "no.such.person@moh.gov.example"  # the domain is an agency's, the address is no one's
STRANGER = "someone@elsewhere.example"
AUTOCONFIG = "/mail/config-v1.1.xml"
WELL_KNOWN = "/.well-known/autoconfig/mail/config-v1.1.xml"
AUTODISCOVER = "/autodiscover/autodiscover.xml"
APPLE = "/.well-known/barid/apple.mobileconfig"
A, R = f"{{{outlook.RESPONSE_NS}}}", f"{{{outlook.OUTLOOK_NS}}}"


@pytest.fixture
async def http(live: Any) -> AsyncIterator[httpx.AsyncClient]:
    url = f"http://127.0.0.1:{live.gateway.http_port}"
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        yield client


def pox(address: str) -> bytes:
    return (f'<?xml version="1.0" encoding="utf-8"?><Autodiscover xmlns="{outlook.REQUEST_NS}">'
            f"<Request><EMailAddress>{address}</EMailAddress><AcceptableResponseSchema>"
            f"{outlook.OUTLOOK_NS}</AcceptableResponseSchema></Request></Autodiscover>").encode()  # fmt: skip


def ports(live: Any) -> dict[str, int]:
    g = live.gateway
    return {"imaps": g.imap_ports["imaps"], "imap": g.imap_ports["imap"],
            "smtps": g.smtp_ports["smtps"], "submission": g.smtp_ports["submission"]}  # fmt: skip


async def test_thunderbird_autoconfig_names_the_listening_ports(
    live: Any, http: httpx.AsyncClient
) -> None:
    p = ports(live)
    bodies = set()
    for path in (AUTOCONFIG, WELL_KNOWN):
        for address in (MOH, NOBODY, MOH.upper()):
            response = await http.get(path, params={"emailaddress": address})
            assert response.status_code == 200, response.text
            assert response.headers["content-type"] == "application/xml; charset=utf-8"
            assert response.headers["cache-control"] == "no-store"
            bodies.add(response.content)
    assert len(bodies) == 1  # the same document whoever asks: nothing tells addresses apart
    provider = fromstring(bodies.pop()).find("emailProvider")
    assert provider is not None and provider.get("id") == "moh.gov.example"
    servers = [(s.tag, s.findtext("hostname"), int(s.findtext("port") or 0), s.findtext("socketType"))
               for s in provider if s.tag.endswith("Server")]  # fmt: skip
    host = live.gateway.settings.server.hostname
    assert servers == [
        ("incomingServer", host, p["imaps"], "SSL"),
        ("incomingServer", host, p["imap"], "STARTTLS"),
        ("outgoingServer", host, p["smtps"], "SSL"),
        ("outgoingServer", host, p["submission"], "STARTTLS"),
    ]


async def test_well_known_lookup_without_address_uses_the_host(
    live: Any, http: httpx.AsyncClient
) -> None:
    """Thunderbird asks https://DOMAIN/.well-known/... and autoconfig.DOMAIN without an address."""
    for host in ("moh.gov.example", "autoconfig.moh.gov.example", "MOH.gov.example:8443"):
        response = await http.get(WELL_KNOWN, headers={"host": host})
        assert response.status_code == 200, (host, response.text)
        assert fromstring(response.content).find("emailProvider/domain").text == "moh.gov.example"
    empty = await http.get(
        AUTOCONFIG, params={"emailaddress": ""}, headers={"host": "moh.gov.example"}
    )
    assert empty.status_code == 200  # an empty parameter is no parameter
    for host in ("127.0.0.1", "[::1]:80", "elsewhere.example", "a..b"):
        response = await http.get(AUTOCONFIG, headers={"host": host})
        assert response.status_code == 404, host


async def test_outlook_autodiscover_in_any_letter_case(live: Any, http: httpx.AsyncClient) -> None:
    p = ports(live)
    known = await http.post("/Autodiscover/Autodiscover.xml", content=pox(MOH))
    assert known.status_code == 200, known.text
    assert known.headers["content-type"] == "text/xml; charset=utf-8"
    account = fromstring(known.content).find(f"{R}Response/{R}Account")
    assert account is not None
    entries = [(e.findtext(f"{R}Type"), int(e.findtext(f"{R}Port") or 0), e.findtext(f"{R}SSL"),
                e.findtext(f"{R}Encryption"), e.findtext(f"{R}LoginName"))
               for e in account.findall(f"{R}Protocol")]  # fmt: skip
    assert entries == [
        ("IMAP", p["imaps"], "on", "SSL", MOH),
        ("IMAP", p["imap"], "off", "TLS", MOH),
        ("SMTP", p["smtps"], "on", "SSL", MOH),
        ("SMTP", p["submission"], "off", "TLS", MOH),
    ]
    for path in (AUTODISCOVER, "/AUTODISCOVER/AUTODISCOVER.XML"):
        unknown = await http.post(path, content=pox(NOBODY))
        assert unknown.status_code == 200
        assert unknown.content == known.content.replace(MOH.encode(), NOBODY.encode())
    assert (await http.get(AUTODISCOVER)).status_code == 405


async def test_apple_profile(live: Any, http: httpx.AsyncClient) -> None:
    p = ports(live)
    response = await http.get(APPLE, params={"emailaddress": MOH})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-apple-aspen-config"
    assert "attachment" in response.headers["content-disposition"]
    (account,) = plistlib.loads(response.content)["PayloadContent"]
    assert account["EmailAddress"] == MOH
    assert account["IncomingMailServerPortNumber"] == p["imaps"]
    assert account["OutgoingMailServerPortNumber"] == p["smtps"]
    assert live.credentials[MOH]["password"].encode() not in response.content
    other = await http.get(APPLE, params={"emailaddress": NOBODY})
    assert other.status_code == 200
    assert plistlib.loads(other.content)["PayloadContent"][0]["EmailAddress"] == NOBODY


async def test_unknown_domains_get_404_and_bad_addresses_400(
    live: Any, http: httpx.AsyncClient
) -> None:
    for path in (AUTOCONFIG, WELL_KNOWN, APPLE):
        response = await http.get(path, params={"emailaddress": STRANGER})
        assert response.status_code == 404, path
        for bad in ("not-an-address", "a@b@moh.gov.example", "<script>@moh.gov.example", "x" * 400):
            response = await http.get(path, params={"emailaddress": bad})
            assert response.status_code == 400, (path, bad)
            assert "not a valid email address" in response.text
            assert "<script>" not in response.text
    assert (await http.get(APPLE)).status_code == 400
    response = await http.post(AUTODISCOVER, content=pox(STRANGER))
    assert response.status_code == 404
    assert fromstring(response.content).findtext(f"{A}Response/{A}Error/{A}ErrorCode") == "500"
    response = await http.post(AUTODISCOVER, content=pox("no address at all"))
    assert response.status_code == 400
    assert "not a valid email address" in response.text


HOSTILE = {
    "billion laughs": b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006">
<Request><EMailAddress>&lol3;@moh.gov.example</EMailAddress></Request></Autodiscover>""",
    "external entity": b"""<?xml version="1.0"?>
<!DOCTYPE a [<!ENTITY xxe SYSTEM "file:///etc/hostname">]>
<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006">
<Request><EMailAddress>&xxe;</EMailAddress></Request></Autodiscover>""",
    "not xml": b"<Autodiscover><Request>",
    "empty": b"",
    "wrong document": b'<?xml version="1.0"?><html><body/></html>',
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
async def test_hostile_autodiscover_requests_are_refused(
    live: Any, http: httpx.AsyncClient, name: str
) -> None:
    response = await http.post(AUTODISCOVER, content=HOSTILE[name])
    assert response.status_code == 400, response.text
    error = fromstring(response.content).find(f"{A}Response/{A}Error")
    assert error is not None and error.findtext(f"{A}ErrorCode") == "600"
    message = error.findtext(f"{A}Message", "")
    assert message.startswith("Invalid Request: ")
    if name in ("billion laughs", "external entity"):
        assert "DTDs and entities are not accepted" in message
    assert "lollol" not in response.text and "Traceback" not in response.text
    assert (await http.get("/healthz")).status_code == 200


async def test_oversized_autodiscover_requests_are_refused(
    live: Any, http: httpx.AsyncClient
) -> None:
    big = pox(MOH) + b" " * outlook.MAX_REQUEST_BYTES
    response = await http.post(AUTODISCOVER, content=big)  # declared length
    assert response.status_code == 413

    async def chunks() -> AsyncIterator[bytes]:  # no length declared: counted as it arrives
        for _ in range(64):
            yield b" " * 1024

    response = await http.post(AUTODISCOVER, content=chunks())
    assert response.status_code == 413
    assert fromstring(response.content).findtext(f"{A}Response/{A}Error/{A}ErrorCode") == "600"


async def test_metrics_name_routes_not_addresses(live: Any, http: httpx.AsyncClient) -> None:
    await http.get(AUTOCONFIG, params={"emailaddress": MOH})
    await http.post("/AutoDiscover/AutoDiscover.xml", content=pox(MOH))
    metrics = exposition()
    assert f'route="{AUTOCONFIG}"' in metrics and f'route="{AUTODISCOVER}"' in metrics
    assert "moh.gov.example" not in metrics and "AutoDiscover" not in metrics

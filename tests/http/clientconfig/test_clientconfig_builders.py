"""The client-configuration documents as the clients read them: Thunderbird's
clientConfig 1.1, Outlook's POX autodiscover (request parsing, hostile XML) and
the Apple profile, parsed back and checked against the documented structure."""

from __future__ import annotations

import plistlib

import pytest
from defusedxml.ElementTree import fromstring

from gateway.http.clientconfig import apple, outlook, thunderbird
from gateway.http.clientconfig.model import (
    AddressError,
    MailEndpoints,
    find_domain,
    parse_address,
)
from policies.directory import (
    AgencyKind,
    AgencyRecord,
    Clearance,
    DirectorySnapshot,
    EmployeeRecord,
    EmployeeStatus,
)

ENDPOINTS = MailEndpoints(hostname="mail.gov.example", imaps_port=993, imap_port=143,
                          smtps_port=465, submission_port=587)  # fmt: skip
SNAPSHOT = DirectorySnapshot.build(
    [
        AgencyRecord("MOH", "Ministry of Health", "وزارة الصحة", AgencyKind.MINISTRY,
                     "moh.gov.example", None),
        AgencyRecord("MOH-PLN", "Planning <&> Directorate", "مديرية التخطيط",
                     AgencyKind.DIRECTORATE, "moh.gov.example", "MOH"),
        AgencyRecord("MOF", "Ministry of Finance", "وزارة المالية", AgencyKind.MINISTRY,
                     "mof.gov.example", None),
    ],
    [EmployeeRecord("minister@moh.gov.example", "MOH", "Karim", "كريم", "minister",
                    Clearance.SECRET, EmployeeStatus.ACTIVE, "MOH-000001-A")],
)  # fmt: skip
MOH = find_domain(SNAPSHOT, "moh.gov.example")
ADDRESS = "minister@moh.gov.example"


def request_body(address: str, schema: str = outlook.OUTLOOK_NS) -> bytes:
    return (
        f'<?xml version="1.0" encoding="utf-8"?>'
        f'<Autodiscover xmlns="{outlook.REQUEST_NS}"><Request>'
        f"<EMailAddress>{address}</EMailAddress>"
        f"<AcceptableResponseSchema>{schema}</AcceptableResponseSchema>"
        f"</Request></Autodiscover>"
    ).encode()


def test_domain_lookup_names_the_top_agency_and_knows_nothing_else() -> None:
    assert MOH is not None and MOH.code == "MOH" and MOH.domain == "moh.gov.example"
    assert find_domain(SNAPSHOT, "MOH.gov.example.") == MOH
    assert find_domain(SNAPSHOT, "other.gov.example") is None
    assert find_domain(SNAPSHOT, "gov.example") is None


@pytest.mark.parametrize("text", ["", "nobody", "a@b", "a b@moh.gov.example", "a@@moh.gov.example",
                                  "<x>@moh.gov.example", "a@moh\n.gov.example", "x" * 400 + "@moh.gov.example"])  # fmt: skip
def test_invalid_addresses_are_refused(text: str) -> None:
    with pytest.raises(AddressError):
        parse_address(text)


def test_thunderbird_autoconfig_follows_client_config_1_1() -> None:
    assert MOH is not None
    body = thunderbird.autoconfig_xml(MOH, ENDPOINTS)
    assert body.startswith(b"<?xml version='1.0' encoding='utf-8'?>")
    root = fromstring(body)
    assert root.tag == "clientConfig" and root.get("version") == "1.1"
    (provider,) = root.findall("emailProvider")
    assert provider.get("id") == "moh.gov.example"
    assert provider.findtext("domain") == "moh.gov.example"
    assert provider.findtext("displayName") == "وزارة الصحة - Ministry of Health"
    assert provider.findtext("displayShortName") == "MOH"
    incoming = [(s.get("type"), s.findtext("hostname"), s.findtext("port"), s.findtext("socketType"),
                 s.findtext("authentication"), s.findtext("username"))
                for s in provider.findall("incomingServer")]  # fmt: skip
    assert incoming == [
        ("imap", "mail.gov.example", "993", "SSL", "password-cleartext", "%EMAILADDRESS%"),
        ("imap", "mail.gov.example", "143", "STARTTLS", "password-cleartext", "%EMAILADDRESS%"),
    ]
    outgoing = [(s.get("type"), s.findtext("port"), s.findtext("socketType"), s.findtext("username"))
                for s in provider.findall("outgoingServer")]  # fmt: skip
    assert outgoing == [("smtp", "465", "SSL", "%EMAILADDRESS%"),
                        ("smtp", "587", "STARTTLS", "%EMAILADDRESS%")]  # fmt: skip


def test_agency_names_are_escaped_not_spliced() -> None:
    snapshot = DirectorySnapshot.build(
        [AgencyRecord("X", 'A <b>&"c"</b>', "أ", AgencyKind.MINISTRY, "x.gov.example", None)], []
    )
    domain = find_domain(snapshot, "x.gov.example")
    assert domain is not None
    root = fromstring(thunderbird.autoconfig_xml(domain, ENDPOINTS))
    assert root.findtext("emailProvider/displayName") == 'أ - A <b>&"c"</b>'


def test_outlook_request_is_parsed() -> None:
    assert outlook.parse_request(request_body(ADDRESS)) == ADDRESS
    # Without AcceptableResponseSchema the Outlook schema is assumed.
    body = f'<Autodiscover xmlns="{outlook.REQUEST_NS}"><Request><EMailAddress> {ADDRESS} </EMailAddress></Request></Autodiscover>'
    assert outlook.parse_request(body.encode()) == ADDRESS


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006">
<Request><EMailAddress>&lol3;</EMailAddress></Request></Autodiscover>"""
EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE a [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006">
<Request><EMailAddress>&xxe;</EMailAddress></Request></Autodiscover>"""
DTD_ONLY = b"""<?xml version="1.0"?><!DOCTYPE Autodiscover SYSTEM "http://127.0.0.1:9/x.dtd">
<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006">
<Request><EMailAddress>a@moh.gov.example</EMailAddress></Request></Autodiscover>"""


@pytest.mark.parametrize(("body", "reason"), [
    (BILLION_LAUGHS, "DTDs and entities"),
    (EXTERNAL_ENTITY, "DTDs and entities"),
    (DTD_ONLY, "DTDs and entities"),
    (b"<Autodiscover", "well-formed"),
    (b"", "well-formed"),
    (b'<?xml version="1.0" encoding="x-unknown"?><a/>', "well-formed"),
    (b"\xff\xfe\x00", "well-formed"),
    (b"<Autodiscover><Request><EMailAddress>a@b.example</EMailAddress></Request></Autodiscover>",
     "not an Outlook autodiscover request"),
    (f'<Autodiscover xmlns="{outlook.REQUEST_NS}"/>'.encode(), "no Request"),
    (f'<Autodiscover xmlns="{outlook.REQUEST_NS}"><Request/></Autodiscover>'.encode(), "no EMailAddress"),
    (request_body(ADDRESS, "http://schemas.microsoft.com/exchange/autodiscover/mobilesync/responseschema/2006"),
     "only the Outlook response schema"),
    (request_body("x" * outlook.MAX_REQUEST_BYTES), "too large"),
])  # fmt: skip
def test_hostile_or_wrong_requests_are_refused(body: bytes, reason: str) -> None:
    with pytest.raises(outlook.AutodiscoverRequestError, match=reason):
        outlook.parse_request(body)


def test_outlook_response_follows_the_pox_schema() -> None:
    body = outlook.response_xml(ADDRESS, ENDPOINTS)
    assert (
        b'<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006">'
        in body
    )
    assert (
        b'<Response xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a">'
        in body
    )
    root = fromstring(body)
    a, r = f"{{{outlook.RESPONSE_NS}}}", f"{{{outlook.OUTLOOK_NS}}}"
    assert root.tag == f"{a}Autodiscover"
    account = root.find(f"{r}Response/{r}Account")
    assert account is not None
    assert account.findtext(f"{r}AccountType") == "email"
    assert account.findtext(f"{r}Action") == "settings"
    protocols = [{child.tag.removeprefix(r): child.text for child in p}
                 for p in account.findall(f"{r}Protocol")]  # fmt: skip
    assert [(p["Type"], p["Port"], p["SSL"], p["Encryption"]) for p in protocols] == [
        ("IMAP", "993", "on", "SSL"),
        ("IMAP", "143", "off", "TLS"),
        ("SMTP", "465", "on", "SSL"),
        ("SMTP", "587", "off", "TLS"),
    ]
    for p in protocols:
        assert p["Server"] == "mail.gov.example" and p["LoginName"] == ADDRESS
        assert p["SPA"] == "off" and p["AuthRequired"] == "on" and p["DomainRequired"] == "off"


def test_outlook_error_document() -> None:
    root = fromstring(outlook.error_xml(outlook.ERROR_INVALID_REQUEST, "Invalid Request: <x>"))
    a = f"{{{outlook.RESPONSE_NS}}}"
    assert root.findtext(f"{a}Response/{a}Error/{a}ErrorCode") == "600"
    assert root.findtext(f"{a}Response/{a}Error/{a}Message") == "Invalid Request: <x>"


def test_apple_profile_is_a_mail_payload_without_password() -> None:
    assert MOH is not None
    body = apple.mobileconfig(ADDRESS, MOH, ENDPOINTS)
    profile = plistlib.loads(body)
    assert profile["PayloadType"] == "Configuration" and profile["PayloadVersion"] == 1
    (account,) = profile["PayloadContent"]
    assert account["PayloadType"] == "com.apple.mail.managed"
    assert account["EmailAccountType"] == "EmailTypeIMAP"
    assert account["EmailAddress"] == ADDRESS
    assert (account["IncomingMailServerHostName"], account["IncomingMailServerPortNumber"],
            account["IncomingMailServerUseSSL"]) == ("mail.gov.example", 993, True)  # fmt: skip
    assert (account["OutgoingMailServerHostName"], account["OutgoingMailServerPortNumber"],
            account["OutgoingMailServerUseSSL"]) == ("mail.gov.example", 465, True)  # fmt: skip
    assert account["IncomingMailServerUsername"] == account["OutgoingMailServerUsername"] == ADDRESS
    assert account["IncomingMailServerAuthentication"] == "EmailAuthPassword"
    assert account["OutgoingMailServerAuthentication"] == "EmailAuthPassword"
    assert not any("Password" in key and key != "OutgoingPasswordSameAsIncomingPassword"
                   for key in account if "Authentication" not in key)  # fmt: skip
    assert b"<key>IncomingPassword</key>" not in body and b"<key>OutgoingPassword</key>" not in body
    # The same address gets the same identifiers (reinstalling replaces it); another differs.
    assert apple.mobileconfig(ADDRESS, MOH, ENDPOINTS) == body
    other = plistlib.loads(apple.mobileconfig("clerk@moh.gov.example", MOH, ENDPOINTS))
    assert other["PayloadUUID"] != profile["PayloadUUID"]
    assert other["PayloadContent"][0]["PayloadUUID"] != account["PayloadUUID"]

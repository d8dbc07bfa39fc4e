"""Outlook autodiscover, plain-old-XML form (POX, MS-OXDSCLI): the request parsed
safely and the answer with the IMAP and SMTP settings ("Protocol" entries).

Owns: parsing the untrusted request (defusedxml: no DTD, no entity, no external
reference, size bounded by the caller) and building the response and error
documents. Must not: trust the request's shape, or echo anything from it but the
checked address (the LoginName the client asked about).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from gateway.http.clientconfig.model import Endpoint, MailEndpoints, Security

REQUEST_NS = "http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006"
RESPONSE_NS = "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"
OUTLOOK_NS = "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"
MAX_REQUEST_BYTES = 8 * 1024  # a real request is a few hundred bytes
CONTENT_TYPE = "text/xml; charset=utf-8"
ERROR_INVALID_REQUEST = "600"  # MS-OXDSCLI: "Invalid Request"
ERROR_NO_ACCOUNT = "500"  # MS-OXDSCLI: the address's settings are not found


class AutodiscoverRequestError(ValueError):
    """The request is not a usable autodiscover request; the message is safe to show."""


def parse_request(body: bytes) -> str:
    """The EMailAddress text of a POX request (unchecked: the caller checks syntax).

    Raises AutodiscoverRequestError for anything else: oversized, not XML, a DTD or
    entity, a different document, or an answer schema other than Outlook's.
    """
    if len(body) > MAX_REQUEST_BYTES:
        raise AutodiscoverRequestError("request too large")
    try:
        root = fromstring(body, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException:
        raise AutodiscoverRequestError("DTDs and entities are not accepted") from None
    except (ET.ParseError, LookupError, ValueError):  # LookupError: an unknown encoding
        raise AutodiscoverRequestError("the request is not well-formed XML") from None
    if root.tag != f"{{{REQUEST_NS}}}Autodiscover":
        raise AutodiscoverRequestError("not an Outlook autodiscover request")
    request = root.find(f"{{{REQUEST_NS}}}Request")
    if request is None:
        raise AutodiscoverRequestError("the request has no Request element")
    schema = request.findtext(f"{{{REQUEST_NS}}}AcceptableResponseSchema")
    if schema is not None and schema.strip() != OUTLOOK_NS:
        raise AutodiscoverRequestError("only the Outlook response schema (2006a) is offered")
    address = request.findtext(f"{{{REQUEST_NS}}}EMailAddress")
    if address is None or not address.strip():
        raise AutodiscoverRequestError("the request has no EMailAddress")
    return address.strip()


def response_xml(address: str, endpoints: MailEndpoints) -> bytes:
    """The settings answer: one email account, IMAP and SMTP entries, implicit TLS first."""
    root = ET.Element("Autodiscover", xmlns=RESPONSE_NS)
    response = ET.SubElement(root, "Response", xmlns=OUTLOOK_NS)
    account = ET.SubElement(response, "Account")
    _text(account, "AccountType", "email")
    _text(account, "Action", "settings")
    for endpoint in (*endpoints.incoming, *endpoints.outgoing):
        _protocol(account, endpoints.hostname, endpoint, address)
    return _document(root)


def error_xml(code: str, message: str) -> bytes:
    """An autodiscover error answer (MS-OXDSCLI Error element) with a fixed message."""
    root = ET.Element("Autodiscover", xmlns=RESPONSE_NS)
    error = ET.SubElement(ET.SubElement(root, "Response"), "Error")
    _text(error, "ErrorCode", code)
    _text(error, "Message", message)
    ET.SubElement(error, "DebugData")
    return _document(root)


def _protocol(parent: ET.Element, host: str, endpoint: Endpoint, address: str) -> None:
    implicit = endpoint.security is Security.IMPLICIT
    protocol = ET.SubElement(parent, "Protocol")
    _text(protocol, "Type", endpoint.protocol.upper())
    _text(protocol, "Server", host)
    _text(protocol, "Port", str(endpoint.port))
    _text(protocol, "DomainRequired", "off")
    _text(protocol, "LoginName", address)
    _text(protocol, "SPA", "off")
    # SSL "on" is implicit TLS; Encryption (which overrides SSL) says so for both
    # modes: "SSL" implicit TLS, "TLS" STARTTLS.
    _text(protocol, "SSL", "on" if implicit else "off")
    _text(protocol, "Encryption", "SSL" if implicit else "TLS")
    _text(protocol, "AuthRequired", "on")
    if endpoint.protocol == "smtp":
        _text(protocol, "UsePOPAuth", "off")
        _text(protocol, "SMTPLast", "off")


def _document(root: ET.Element) -> bytes:
    ET.indent(root)
    return bytes(ET.tostring(root, encoding="utf-8", xml_declaration=True)) + b"\n"


def _text(parent: ET.Element, tag: str, value: str) -> None:
    ET.SubElement(parent, tag).text = value
